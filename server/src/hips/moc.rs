//! The coverage of a catalogue HiPS as a MOC 2.0 S-MOC, serialised as FITS with NUNIQ
//! ordering (FORMATS.md §4.2): a primary HDU with `NAXIS=0 EXTEND=T`, then a one-column
//! BINTABLE `UNIQ` (`1J` below order 14, else `1K`), big-endian, in canonical form.

/// Canonical cells (`(order, index)`, sorted by NUNIQ value) of the set of order-`order`
/// cells `cells` (sorted, deduplicated): complete groups of four siblings are merged into
/// their parent, recursively.
pub(crate) fn normalise(order: u8, mut cells: Vec<u64>) -> Vec<(u8, u64)> {
    cells.sort_unstable();
    cells.dedup();
    let mut out: Vec<(u8, u64)> = Vec::new();
    let mut k = order;
    loop {
        let mut parents = Vec::new();
        let mut i = 0;
        while i < cells.len() {
            let c = cells[i];
            if k > 0
                && c.is_multiple_of(4)
                && i + 3 < cells.len()
                && cells[i + 3] == c + 3
                && cells[i + 1] == c + 1
                && cells[i + 2] == c + 2
            {
                parents.push(c / 4);
                i += 4;
            } else {
                out.push((k, c));
                i += 1;
            }
        }
        if parents.is_empty() || k == 0 {
            break;
        }
        cells = parents;
        k -= 1;
    }
    out.sort_unstable_by_key(|&(o, n)| uniq(o, n));
    out
}

/// The NUNIQ value of a cell: `4·4^order + index`.
pub(crate) fn uniq(order: u8, index: u64) -> u64 {
    (4u64 << (2 * u32::from(order))) + index
}

/// Fraction of the sky the cells cover.
pub(crate) fn sky_fraction(cells: &[(u8, u64)]) -> f64 {
    cells
        .iter()
        .map(|&(o, _)| 1.0 / (12.0 * 4f64.powi(i32::from(o))))
        .sum()
}

fn card(out: &mut Vec<u8>, key: &str, value: &str) {
    let mut s = if value.is_empty() {
        key.to_string()
    } else {
        format!("{key:<8}= {value:>20}")
    };
    s.truncate(80);
    out.extend_from_slice(format!("{s:<80}").as_bytes());
}

fn sval(s: &str) -> String {
    format!("{:<20}", format!("'{:<8}'", s.replace('\'', "''")))
}

fn end_block(out: &mut Vec<u8>, fill: u8) {
    while !out.len().is_multiple_of(2880) {
        out.push(fill);
    }
}

/// The FITS file of the MOC `cells` (canonical) whose best order is `order`.
pub(crate) fn fits(order: u8, cells: &[(u8, u64)]) -> Vec<u8> {
    let wide = order >= 14;
    let width = if wide { 8 } else { 4 };
    let mut out = Vec::with_capacity(5760 + cells.len() * width + 2880);
    card(&mut out, "SIMPLE", "T");
    card(&mut out, "BITPIX", "8");
    card(&mut out, "NAXIS", "0");
    card(&mut out, "EXTEND", "T");
    card(&mut out, "END", "");
    end_block(&mut out, b' ');
    let n = cells.len().to_string();
    let w = width.to_string();
    let o = order.to_string();
    for (k, v) in [
        ("XTENSION", sval("BINTABLE")),
        ("BITPIX", "8".into()),
        ("NAXIS", "2".into()),
        ("NAXIS1", w),
        ("NAXIS2", n),
        ("PCOUNT", "0".into()),
        ("GCOUNT", "1".into()),
        ("TFIELDS", "1".into()),
        ("TTYPE1", sval("UNIQ")),
        ("TFORM1", sval(if wide { "1K" } else { "1J" })),
        ("MOCVERS", sval("2.0")),
        ("MOCDIM", sval("SPACE")),
        ("ORDERING", sval("NUNIQ")),
        ("COORDSYS", sval("C")),
        ("MOCORD_S", o.clone()),
        ("MOCORDER", o),
        ("PIXTYPE", sval("HEALPIX")),
        ("MOCTYPE", sval("CATALOG")),
        ("MOCTOOL", sval("Tessera")),
    ] {
        card(&mut out, k, &v);
    }
    card(&mut out, "END", "");
    end_block(&mut out, b' ');
    for &(o, c) in cells {
        let u = uniq(o, c);
        if wide {
            out.extend_from_slice(&u.to_be_bytes());
        } else {
            // Below order 14 every NUNIQ value fits in 31 bits.
            out.extend_from_slice(&(u as u32).to_be_bytes());
        }
    }
    end_block(&mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_complete_sibling_groups() {
        // All 48 order-1 cells become the 12 base cells; a lone order-1 cell stays.
        let all: Vec<u64> = (0..48).collect();
        assert_eq!(
            normalise(1, all),
            (0..12).map(|n| (0, n)).collect::<Vec<_>>()
        );
        let cells = normalise(2, vec![0, 1, 2, 3, 17, 18]);
        assert_eq!(cells, vec![(1, 0), (2, 17), (2, 18)]);
        assert_eq!(uniq(1, 0), 16);
        assert!((sky_fraction(&[(0, 1)]) - 1.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn fits_layout() {
        let f = fits(6, &[(2, 0), (4, 17), (4, 18)]);
        assert_eq!(f.len(), 3 * 2880);
        let h = String::from_utf8_lossy(&f[2880..5760]);
        assert!(h.starts_with("XTENSION= 'BINTABLE'"));
        assert!(h.contains("TFORM1  = '1J      '"));
        assert!(h.contains("MOCORD_S=                    6"));
        assert_eq!(&f[5760..5764], &64u32.to_be_bytes());
        assert_eq!(&f[5764..5768], &1041u32.to_be_bytes());
    }
}
