//! `Moc.fits`: the coverage of the HiPS as a MOC 2.0 S-MOC in NUNIQ FITS (FORMATS.md §4.2),
//! through CDS's `moc` crate (canonical form, `MOCORD_S`/`MOCORDER`, `1J` below order 14
//! and `1K` from it).

use moc::deser::fits::{hpx_cells_to_fits_ivoa, keywords::MocType};
use moc::idx::Idx;
use moc::moc::range::RangeMOC;
use moc::moc::{RangeMOCIntoIterator, RangeMOCIterator};
use moc::qty::Hpx;

/// The NUNIQ FITS of the cells `cells` at order `order`, and the fraction of the sky they
/// cover.
pub(crate) fn moc_fits(order: u8, cells: &[u64], id: &str) -> Result<(Vec<u8>, f64), String> {
    if order < 14 {
        let small: Vec<u32> = cells
            .iter()
            .filter_map(|&c| u32::try_from(c).ok())
            .collect();
        write::<u32>(order, small, id)
    } else {
        write::<u64>(order, cells.to_vec(), id)
    }
}

fn write<T: Idx>(order: u8, mut cells: Vec<T>, id: &str) -> Result<(Vec<u8>, f64), String> {
    cells.sort_unstable();
    cells.dedup();
    let moc: RangeMOC<T, Hpx<T>> = RangeMOC::from_fixed_depth_cells(order, cells.into_iter(), None);
    let fraction = moc.coverage_percentage();
    let mut out = Vec::new();
    hpx_cells_to_fits_ivoa(
        moc.into_range_moc_iter().cells(),
        Some(id.to_string()),
        Some(MocType::Image),
        &mut out,
    )
    .map_err(|e| e.to_string())?;
    Ok((out, fraction))
}
