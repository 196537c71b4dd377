//! HATS partition pixels: leaf paths (the Dir rule), `partition_info.csv`, and their order
//! along the NESTED space-filling curve.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::healpix::{ORDER_29, cell_range29, n_cells};

/// A HEALPix cell `(order, npix)` used as a HATS partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pixel {
    /// HEALPix order k (`nside = 2^k`), 0..=29.
    pub order: u8,
    /// NESTED index at `order`, `< 12·4^order`.
    pub npix: u64,
}

impl Pixel {
    /// A pixel, checked.
    pub fn new(order: u8, npix: u64) -> Result<Pixel> {
        if order > ORDER_29 || npix >= n_cells(order) {
            return Err(Error::Invalid {
                what: "HEALPix pixel",
                message: format!("({order}, {npix}) does not exist"),
            });
        }
        Ok(Pixel { order, npix })
    }

    /// The Dir bucket: `(npix / 10000) * 10000`.
    pub fn dir(&self) -> u64 {
        (self.npix / 10_000) * 10_000
    }

    /// Path of the leaf relative to `dataset/`: `Norder=k/Dir=D/Npix=n.parquet`.
    pub fn leaf_name(&self) -> String {
        format!(
            "Norder={}/Dir={}/Npix={}.parquet",
            self.order,
            self.dir(),
            self.npix
        )
    }

    /// Path of the leaf relative to the catalog root.
    pub fn leaf_path(&self) -> String {
        format!("dataset/{}", self.leaf_name())
    }

    /// The `_healpix_29` values this pixel covers.
    pub fn range29(&self) -> Range<i64> {
        cell_range29(self.order, self.npix)
    }

    /// Whether `other` is this pixel or lies inside it.
    pub fn contains(&self, other: &Pixel) -> bool {
        other.order >= self.order
            && (other.npix >> (2 * (other.order - self.order) as u32)) == self.npix
    }

    /// Parses a leaf path such as `dataset/Norder=5/Dir=0/Npix=192.parquet` (URL-quoted `=`
    /// accepted), as hats recognises partitions.
    pub fn from_leaf_path(path: &str) -> Option<Pixel> {
        let path = path.replace("%3D", "=").replace("%3d", "=");
        let order = number_after(&path, "Norder=")?;
        let npix = number_after(&path, "Npix=")?;
        Pixel::new(u8::try_from(order).ok()?, npix).ok()
    }
}

fn number_after(s: &str, key: &str) -> Option<u64> {
    let i = s.find(key)? + key.len();
    let digits: String = s[i..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

impl fmt::Display for Pixel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.order, self.npix)
    }
}

/// Pixels order along the NESTED curve: by first `_healpix_29` value, then coarser first.
impl Ord for Pixel {
    fn cmp(&self, other: &Self) -> Ordering {
        self.range29()
            .start
            .cmp(&other.range29().start)
            .then(self.order.cmp(&other.order))
    }
}

impl PartialOrd for Pixel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Writes `partition_info.csv`: header `Norder,Npix`, rows in curve order, LF endings.
pub fn write_partition_info(pixels: &[Pixel]) -> String {
    let mut sorted = pixels.to_vec();
    sorted.sort();
    let mut s = String::from("Norder,Npix\n");
    for p in sorted {
        s.push_str(&format!("{},{}\n", p.order, p.npix));
    }
    s
}

/// Parses `partition_info.csv` (columns found by header name; extra columns ignored), and
/// returns the pixels in curve order.
pub fn parse_partition_info(text: &str, file: &str) -> Result<Vec<Pixel>> {
    let bad = |line: usize, message: String| Error::Malformed {
        file: file.to_string(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = text.lines().enumerate();
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad(1, "empty file, expected a header `Norder,Npix`".into()))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |name: &str| {
        cols.iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .ok_or_else(|| bad(1, format!("no `{name}` column in header `{header}`")))
    };
    let (io, ip) = (find("Norder")?, find("Npix")?);
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |j: usize| -> Result<u64> {
            f.get(j)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| bad(i + 1, format!("expected two integers, found `{line}`")))
        };
        let order = u8::try_from(get(io)?)
            .map_err(|_| bad(i + 1, format!("order out of range in `{line}`")))?;
        let p = Pixel::new(order, get(ip)?).map_err(|e| bad(i + 1, e.to_string()))?;
        out.push(p);
    }
    out.sort();
    for w in out.windows(2) {
        if w[0].range29().end > w[1].range29().start {
            return Err(Error::Malformed {
                file: file.to_string(),
                message: format!("partitions {} and {} overlap", w[0], w[1]),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_paths_follow_the_dir_rule() {
        let p = Pixel::new(7, 10302).unwrap();
        assert_eq!(
            p.leaf_path(),
            "dataset/Norder=7/Dir=10000/Npix=10302.parquet"
        );
        assert_eq!(Pixel::from_leaf_path(&p.leaf_path()), Some(p));
        assert_eq!(
            Pixel::from_leaf_path("dataset/Norder%3D2/Dir%3D0/Npix%3D5.parquet"),
            Some(Pixel::new(2, 5).unwrap())
        );
        assert_eq!(Pixel::from_leaf_path("dataset/_metadata"), None);
        assert!(Pixel::new(0, 12).is_err());
    }

    #[test]
    fn partition_info_is_in_curve_order_like_hats() {
        // The example of FORMATS.md §1.4.
        let mut pix = vec![];
        for (o, n) in [
            (0, 1),
            (0, 2),
            (0, 3),
            (0, 4),
            (0, 5),
            (0, 6),
            (0, 7),
            (0, 8),
            (0, 9),
            (0, 10),
            (0, 11),
            (1, 1),
            (1, 2),
            (1, 3),
            (2, 0),
            (2, 1),
            (2, 2),
            (3, 14),
            (3, 15),
            (4, 49),
            (4, 50),
            (4, 51),
            (5, 192),
            (5, 193),
            (5, 194),
            (5, 195),
        ] {
            pix.push(Pixel::new(o, n).unwrap());
        }
        let text = write_partition_info(&pix);
        let expected = "Norder,Npix\n2,0\n2,1\n2,2\n5,192\n5,193\n5,194\n5,195\n4,49\n4,50\n4,51\n3,14\n3,15\n1,1\n1,2\n1,3\n0,1\n0,2\n0,3\n0,4\n0,5\n0,6\n0,7\n0,8\n0,9\n0,10\n0,11\n";
        assert_eq!(text, expected);
        let back = parse_partition_info(&text, "p.csv").unwrap();
        assert_eq!(back.len(), 26);
        assert_eq!(write_partition_info(&back), expected);
    }

    #[test]
    fn malformed_partition_info_names_the_line() {
        let e = parse_partition_info("Norder,Npix\n1,2\nx,3\n", "p.csv").unwrap_err();
        assert!(e.to_string().contains("p.csv: line 3"), "{e}");
        let e = parse_partition_info("Norder,Npix\n0,1\n1,4\n", "p.csv").unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        let e = parse_partition_info("a,b\n", "p.csv").unwrap_err();
        assert!(e.to_string().contains("Norder"), "{e}");
    }
}
