//! `skymap.fits` / `point_map.fits`: the HEALPix count map at the mapping order, written with
//! `cdshealpix`'s skymap writer under the same rule hats uses (IMPLICIT unless more than half
//! of the cells are zero, then EXPLICIT).

use crate::error::{Error, Result};
use crate::healpix::n_cells;

/// A dense count map at one order (`counts.len() == 12·4^order`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skymap {
    /// HEALPix order of the map.
    pub order: u8,
    /// Row count per NESTED cell.
    pub counts: Vec<u64>,
}

impl Skymap {
    /// An all-zero map at `order`.
    pub fn zeros(order: u8) -> Skymap {
        Skymap {
            order,
            counts: vec![0; n_cells(order) as usize],
        }
    }

    /// Sum of all counts.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another map of the same order.
    pub fn merge(&mut self, other: &Skymap) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// The map summed down to a coarser `order`.
    pub fn degrade(&self, order: u8) -> Skymap {
        let shift = 2 * (self.order - order.min(self.order)) as u32;
        let mut out = Skymap::zeros(order.min(self.order));
        for (i, c) in self.counts.iter().enumerate() {
            out.counts[i >> shift] += c;
        }
        out
    }

    /// Encodes the map as a FITS file, byte-compatible with what hats writes.
    pub fn to_fits(&self) -> Result<Vec<u8>> {
        use cdshealpix::nested::map::fits::write::{
            write_explicit_skymap_fits_from_parts, write_implicit_skymap_fits_from_it,
        };
        let mut buf = Vec::new();
        let nonzero = self.counts.iter().filter(|&&c| c > 0).count();
        let res = if nonzero * 2 < self.counts.len() {
            let keys = self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, _)| i as u64);
            let vals = self.counts.iter().filter(|&&c| c > 0).map(|&c| c as i64);
            write_explicit_skymap_fits_from_parts(&mut buf, self.order, nonzero, keys, vals)
        } else {
            buf.reserve(self.counts.len() * 8 + 2 * 2880);
            let vals = self.counts.iter().map(|&c| c as i64);
            write_implicit_skymap_fits_from_it(&mut buf, self.order, vals)
        };
        res.map_err(|e| Error::Internal(format!("writing skymap: {e}")))?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(fits: &[u8], key: &str) -> Option<String> {
        fits.chunks(80)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .find(|c| c.starts_with(key))
    }

    #[test]
    fn sparse_maps_are_explicit_dense_maps_implicit() {
        let mut m = Skymap::zeros(2);
        m.counts[5] = 7;
        m.counts[100] = 3;
        let f = m.to_fits().unwrap();
        assert_eq!(f.len() % 2880, 0);
        assert!(card(&f, "INDXSCHM").unwrap().contains("EXPLICIT"));
        assert!(card(&f, "NAXIS2").unwrap().contains(" 2"));
        assert!(card(&f, "ORDERING").unwrap().contains("NESTED"));
        let dense = Skymap {
            order: 1,
            counts: (1..=48).collect(),
        };
        let f = dense.to_fits().unwrap();
        assert!(card(&f, "INDXSCHM").unwrap().contains("IMPLICIT"));
        assert_eq!(dense.degrade(0).counts[0], (1..=4).sum::<u64>());
        assert_eq!(dense.degrade(0).total(), dense.total());
    }
}
