//! Walking the HDUs of a FITS file: headers are read block by block, data units are
//! skipped by seeking, so listing the images of a 50 GB cube reads a few kilobytes.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use super::ImageError;
use super::header::{BLOCK_LEN, CARD_LEN, Card, Header, Value};

/// Headers longer than this (≈ 130,000 cards) are taken as a file without `END`.
const MAX_HEADER_BYTES: u64 = 10 * 1024 * 1024;

/// One image HDU: the primary array or an `IMAGE` extension with `NAXIS ≥ 2` and no empty
/// axis.
#[derive(Debug, Clone)]
pub struct ImageHdu {
    /// HDU number in the file, 0 = primary.
    pub index: usize,
    /// Its header.
    pub header: Header,
    /// `BITPIX`: 8, 16, 32, 64, -32 or -64.
    pub bitpix: i32,
    /// `NAXIS1, NAXIS2, …` (FITS order: the first axis varies fastest).
    pub shape: Vec<usize>,
    /// Byte offset of the data unit in the file.
    pub data_offset: u64,
    /// Length of the data without padding: `|BITPIX|/8 · ∏ NAXISn`.
    pub data_len: u64,
    /// `BSCALE` (default 1).
    pub bscale: f64,
    /// `BZERO` (default 0).
    pub bzero: f64,
    /// `BLANK` (integer images only).
    pub blank: Option<i64>,
    /// `EXTNAME`, if any.
    pub extname: Option<String>,
}

impl ImageHdu {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(&self) -> usize {
        self.bitpix.unsigned_abs() as usize / 8
    }

    /// The file this HDU belongs to.
    pub fn file(&self) -> &Path {
        self.header.file()
    }
}

/// The structural facts of any HDU, read from its header.
struct HduLayout {
    is_image: bool,
    bitpix: i32,
    shape: Vec<usize>,
    data_len: u64,
}

/// Lists the image HDUs of a FITS file: the primary array and `IMAGE` extensions with
/// `NAXIS ≥ 2` (tables, empty primaries, random groups and tile-compressed images, which
/// are binary tables, are skipped). Every HDU up to the last must be complete: a data unit
/// shorter than its header declares is an error naming the HDU; a missing final padding is
/// tolerated, as is trailing junk after the last complete HDU (astropy warns about both).
pub fn read_image_hdus(path: &Path) -> Result<Vec<ImageHdu>, ImageError> {
    let file_arc = Arc::new(path.to_path_buf());
    let io = |e: std::io::Error| ImageError::Io {
        file: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::with_capacity(BLOCK_LEN * 4, file);
    let mut pos = 0u64;
    let mut out = Vec::new();
    let mut index = 0usize;
    while pos < file_len {
        let remaining = file_len - pos;
        if index > 0 && remaining < BLOCK_LEN as u64 {
            break; // a short tail after the last HDU: ignored
        }
        reader.seek(SeekFrom::Start(pos)).map_err(io)?;
        let Some((cards, header_len)) = read_header(&mut reader, path, index, pos, file_len)?
        else {
            break; // trailing junk or zero padding after the last HDU
        };
        let header = Header::with_arc(Arc::clone(&file_arc), index, cards);
        let data_offset = pos + header_len;
        let layout = layout(&header, index)?;
        let available = file_len.saturating_sub(data_offset);
        if layout.data_len > available {
            return Err(ImageError::Truncated {
                file: path.to_path_buf(),
                hdu: index,
                offset: data_offset,
                declared: layout.data_len,
                available,
            });
        }
        if layout.is_image {
            let bscale = header.get_f64("BSCALE")?.unwrap_or(1.0);
            let bzero = header.get_f64("BZERO")?.unwrap_or(0.0);
            let blank = if layout.bitpix > 0 {
                header.get_i64("BLANK")?
            } else {
                None
            };
            let extname = header.get_str("EXTNAME").ok().flatten();
            out.push(ImageHdu {
                index,
                header,
                bitpix: layout.bitpix,
                shape: layout.shape,
                data_offset,
                data_len: layout.data_len,
                bscale,
                bzero,
                blank,
                extname,
            });
        }
        let padded = layout.data_len.div_ceil(BLOCK_LEN as u64) * BLOCK_LEN as u64;
        pos = data_offset + padded;
        index += 1;
    }
    if index == 0 {
        return Err(ImageError::Structure {
            file: path.to_path_buf(),
            hdu: 0,
            message: "empty file: not a FITS file".into(),
        });
    }
    Ok(out)
}

/// Reads header blocks from the reader (positioned at `pos`) up to the block holding `END`.
/// Returns the cards and the header length in bytes, or `None` when an extension position
/// holds no header (zero padding or junk after the last HDU).
fn read_header(
    reader: &mut impl Read,
    path: &Path,
    hdu: usize,
    pos: u64,
    file_len: u64,
) -> Result<Option<(Vec<Card>, u64)>, ImageError> {
    let structure = |message: String| ImageError::Structure {
        file: path.to_path_buf(),
        hdu,
        message,
    };
    let mut cards = Vec::new();
    let mut block = [0u8; BLOCK_LEN];
    let mut len = 0u64;
    loop {
        if pos + len + BLOCK_LEN as u64 > file_len {
            if len == 0 && hdu > 0 {
                return Ok(None);
            }
            return Err(structure(format!(
                "header has no END card: the file ends at byte {file_len}, inside the header that starts at byte {pos}"
            )));
        }
        reader.read_exact(&mut block).map_err(|e| ImageError::Io {
            file: path.to_path_buf(),
            source: e,
        })?;
        if len == 0 {
            let first = &block[..8];
            if hdu == 0 && first != b"SIMPLE  " {
                return Err(structure(
                    "not a FITS file: the first card is not SIMPLE".into(),
                ));
            }
            if hdu > 0 && first != b"XTENSION" {
                return Ok(None);
            }
        }
        len += BLOCK_LEN as u64;
        for chunk in block.chunks_exact(CARD_LEN) {
            let mut raw = [b' '; CARD_LEN];
            raw.copy_from_slice(chunk);
            let card = Card::parse(&raw);
            if card.keyword() == "END" && raw[3..].iter().all(|&b| b == b' ') {
                return Ok(Some((cards, len)));
            }
            cards.push(card);
        }
        if len >= MAX_HEADER_BYTES {
            return Err(structure(format!(
                "header has no END card in its first {MAX_HEADER_BYTES} bytes (from byte {pos})"
            )));
        }
    }
}

fn layout(h: &Header, index: usize) -> Result<HduLayout, ImageError> {
    // Structural keywords must be well formed wherever they are.
    let first = h
        .cards()
        .first()
        .map(|c| c.keyword().to_string())
        .unwrap_or_default();
    let xtension = if index == 0 {
        match h.get_bool("SIMPLE")? {
            Some(true) => None,
            _ => return Err(h.card_error(0, "SIMPLE must be T")),
        }
    } else {
        if first != "XTENSION" {
            return Err(h.card_error(0, "an extension header must start with XTENSION"));
        }
        Some(h.get_str("XTENSION")?.unwrap_or_default())
    };
    let bitpix = h.require_i64("BITPIX")?;
    let bitpix = match bitpix {
        8 | 16 | 32 | 64 | -32 | -64 => bitpix as i32,
        _ => {
            let (i, _) = h.find("BITPIX").ok_or_else(|| h.missing("BITPIX"))?;
            return Err(h.card_error(
                i,
                format!("BITPIX = {bitpix}: must be 8, 16, 32, 64, -32 or -64"),
            ));
        }
    };
    let naxis = h.require_i64("NAXIS")?;
    if !(0..=999).contains(&naxis) {
        let (i, _) = h.find("NAXIS").ok_or_else(|| h.missing("NAXIS"))?;
        return Err(h.card_error(i, format!("NAXIS = {naxis}: must be 0 to 999")));
    }
    let mut shape = Vec::with_capacity(naxis as usize);
    for n in 1..=naxis {
        let key = format!("NAXIS{n}");
        let v = h.require_i64(&key)?;
        if v < 0 {
            let (i, _) = h.find(&key).ok_or_else(|| h.missing(&key))?;
            return Err(h.card_error(i, format!("{key} = {v}: must not be negative")));
        }
        shape.push(v as usize);
    }
    let (pcount, gcount) = if index > 0 {
        (
            h.get_i64("PCOUNT")?.unwrap_or(0),
            h.get_i64("GCOUNT")?.unwrap_or(1),
        )
    } else {
        (0, 1)
    };
    let groups = index == 0 && h.get_bool("GROUPS")?.unwrap_or(false) && shape.first() == Some(&0);
    let (pcount, gcount) = if groups {
        (
            h.get_i64("PCOUNT")?.unwrap_or(0),
            h.get_i64("GCOUNT")?.unwrap_or(1),
        )
    } else {
        (pcount, gcount)
    };
    if pcount < 0 || gcount < 0 {
        let key = if pcount < 0 { "PCOUNT" } else { "GCOUNT" };
        let (i, _) = h.find(key).ok_or_else(|| h.missing(key))?;
        return Err(h.card_error(i, format!("{key} must not be negative")));
    }
    let overflow = || {
        let i = h.find("NAXIS").map_or(0, |(i, _)| i);
        h.card_error(
            i,
            "the data size declared by NAXISn/PCOUNT/GCOUNT overflows 64 bits",
        )
    };
    let axes: &[usize] = if groups { &shape[1..] } else { &shape };
    let elements = if naxis == 0 {
        0u64
    } else {
        axes.iter()
            .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64))
            .ok_or_else(overflow)?
    };
    let data_len = elements
        .checked_add(pcount as u64)
        .and_then(|v| v.checked_mul(gcount as u64))
        .and_then(|v| v.checked_mul(bitpix.unsigned_abs() as u64 / 8))
        .ok_or_else(overflow)?;
    let data_len = if naxis == 0 && pcount == 0 {
        0
    } else {
        data_len
    };
    let is_image_type = match &xtension {
        None => !groups,
        Some(x) => x.trim() == "IMAGE",
    };
    let is_image = is_image_type && naxis >= 2 && shape.iter().all(|&n| n > 0);
    // Cards whose keyword must parse: ensure BSCALE/BZERO/BLANK are well formed on images.
    if is_image {
        for key in ["BSCALE", "BZERO"] {
            h.get_f64(key)?;
        }
        if let Some((i, c)) = h.find("BLANK")
            && bitpix > 0
            && !matches!(c.value(), Value::Int(_))
        {
            return Err(h.card_error(i, "BLANK must be an integer"));
        }
    }
    Ok(HduLayout {
        is_image,
        bitpix,
        shape,
        data_len,
    })
}
