//! FITS header cards: parsing the 80-character records of one HDU.
//!
//! Parsing is tolerant where real files are sloppy and strict where it matters:
//!
//! * every card is kept verbatim (80 bytes), so a cutout copies unknown cards exactly;
//! * values are parsed once, into [`Value`]; a value that is none of the FITS types (an
//!   unterminated string, `DATE = 2011-09-01` without quotes, …) becomes
//!   [`Value::Malformed`]. Such a card is an error only when somebody asks for it: the
//!   structural keywords (`BITPIX`, `NAXISn`, …) are always asked for, WCS keywords when a
//!   WCS is built, anything else when a caller reads it with a `get_*` method. The error
//!   names the file, the HDU, the card number and the keyword;
//! * long strings (`'…&'` followed by `CONTINUE` cards) are joined;
//! * `HIERARCH` keywords (ESO) are stored under their long name (`ESO DET CHIP ID`); a
//!   lookup may include or omit the `HIERARCH ` prefix;
//! * lowercase keywords and bytes outside printable ASCII are tolerated (astropy warns and
//!   goes on; so do we) except in the keyword of a structural card.
//!
//! A keyword that occurs twice is looked up at its first occurrence (as astropy does).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ImageError;

/// Length of one header card.
pub const CARD_LEN: usize = 80;
/// Length of one FITS block.
pub const BLOCK_LEN: usize = 2880;

/// The parsed value of a card.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string, trailing blanks removed, `''` unescaped (not yet joined with
    /// `CONTINUE` cards: [`Header::get_str`] does that).
    Str(String),
    /// `T` or `F`.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A real literal (`E` or `D` exponent).
    Float(f64),
    /// A complex literal `(re, im)`, kept as text.
    Complex(String),
    /// A value indicator with no value (an undefined value).
    Undefined,
    /// No value: commentary cards (`COMMENT`, `HISTORY`, blank keyword, any card without
    /// `= ` in columns 9–10).
    None,
    /// A value field that is none of the above; the message says why.
    Malformed(String),
}

/// One 80-character card.
#[derive(Clone, PartialEq)]
pub struct Card {
    raw: [u8; CARD_LEN],
    keyword: String,
    value: Value,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Card").field(&self.text()).finish()
    }
}

impl Card {
    /// Parses one card.
    pub fn parse(raw: &[u8; CARD_LEN]) -> Card {
        let (keyword, value) = parse_card(raw);
        Card {
            raw: *raw,
            keyword,
            value,
        }
    }

    /// Builds a card from text (padded with blanks; longer text is an error).
    pub fn from_text(text: &str) -> Option<Card> {
        let bytes = text.as_bytes();
        if bytes.len() > CARD_LEN {
            return None;
        }
        let mut raw = [b' '; CARD_LEN];
        raw[..bytes.len()].copy_from_slice(bytes);
        Some(Card::parse(&raw))
    }

    /// The keyword: columns 1–8 without trailing blanks, upper-cased; the long name for
    /// `HIERARCH` cards.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The parsed value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The 80 bytes as stored.
    pub fn raw(&self) -> &[u8; CARD_LEN] {
        &self.raw
    }

    /// The card as text (bytes outside ASCII replaced), trailing blanks removed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).trim_end().to_string()
    }

    /// The comment after the value (`/ …`), if any.
    pub fn comment(&self) -> Option<String> {
        if !matches!(self.value, Value::None) {
            let start = value_start(&self.raw)?;
            let rest = String::from_utf8_lossy(&self.raw[start..]).into_owned();
            let after = skip_value(&rest)?;
            let c = after.trim_start();
            return c.strip_prefix('/').map(|c| c.trim().to_string());
        }
        None
    }
}

/// Where the value field starts (after `= `), for value cards.
fn value_start(raw: &[u8; CARD_LEN]) -> Option<usize> {
    if raw.starts_with(b"HIERARCH") {
        raw.iter().position(|&b| b == b'=').map(|p| p + 1)
    } else if &raw[8..10] == b"= " {
        Some(10)
    } else if raw.starts_with(b"CONTINUE") {
        Some(8)
    } else {
        None
    }
}

/// The text after the value of a value field (from its start), i.e. spaces and comment.
fn skip_value(field: &str) -> Option<&str> {
    let t = field.trim_start();
    let offset = field.len() - t.len();
    if let Some(body) = t.strip_prefix('\'') {
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return Some(&field[offset + 1 + i + 1..]);
            }
            i += 1;
        }
        None
    } else {
        let end = t.find('/').unwrap_or(t.len());
        Some(&field[offset + end..])
    }
}

fn is_commentary(keyword: &str) -> bool {
    matches!(keyword, "COMMENT" | "HISTORY" | "" | "END")
}

fn parse_card(raw: &[u8; CARD_LEN]) -> (String, Value) {
    let head = String::from_utf8_lossy(&raw[..8]);
    let keyword = head.trim_end().to_ascii_uppercase();
    if keyword == "HIERARCH" {
        let text = String::from_utf8_lossy(&raw[8..]).into_owned();
        if let Some(eq) = text.find('=') {
            let name = text[..eq].split_whitespace().collect::<Vec<_>>().join(" ");
            let name = name.to_ascii_uppercase();
            let value = parse_value(&text[eq + 1..]);
            return (name, value);
        }
        return (keyword, Value::None);
    }
    if keyword == "CONTINUE" {
        let text = String::from_utf8_lossy(&raw[8..]).into_owned();
        return (keyword, parse_value(&text));
    }
    if is_commentary(&keyword) || &raw[8..10] != b"= " {
        return (keyword, Value::None);
    }
    let text = String::from_utf8_lossy(&raw[10..]).into_owned();
    (keyword, parse_value(&text))
}

/// Parses a value field (the text after `= `), ignoring a trailing comment.
fn parse_value(field: &str) -> Value {
    let t = field.trim_start();
    if let Some(body) = t.strip_prefix('\'') {
        let mut s = String::new();
        let mut chars = body.chars().peekable();
        let mut closed = false;
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    s.push('\'');
                    chars.next();
                    continue;
                }
                closed = true;
                break;
            }
            s.push(c);
        }
        if !closed {
            return Value::Malformed("string value without a closing quote".into());
        }
        let rest: String = chars.collect();
        let rest = rest.trim_start();
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Value::Malformed(format!("unexpected text {rest:?} after the string value"));
        }
        let trimmed = s.trim_end().to_string();
        return Value::Str(trimmed);
    }
    let end = t.find('/').unwrap_or(t.len());
    let v = t[..end].trim();
    if v.is_empty() {
        return Value::Undefined;
    }
    match v {
        "T" => return Value::Bool(true),
        "F" => return Value::Bool(false),
        _ => {}
    }
    if v.starts_with('(') {
        if v.ends_with(')') && v[1..v.len() - 1].split(',').count() == 2 {
            return Value::Complex(v.to_string());
        }
        return Value::Malformed(format!("malformed complex value {v:?}"));
    }
    if is_integer_literal(v) {
        if let Ok(i) = v.parse::<i64>() {
            return Value::Int(i);
        }
        // Too large for i64: keep it as a real.
        if let Ok(f) = v.parse::<f64>() {
            return Value::Float(f);
        }
    }
    if is_real_literal(v) {
        let normal = v.replace(['D', 'd'], "E");
        if let Ok(f) = normal.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Malformed(format!(
        "{v:?} is not a FITS value (string, logical, integer or real)"
    ))
}

fn is_integer_literal(v: &str) -> bool {
    let d = v.strip_prefix(['+', '-']).unwrap_or(v);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]digits[.digits][(E|D)[+-]digits]` or `[+-].digits…` (FITS 4.0 §4.2.4).
fn is_real_literal(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'E' | b'e' | b'D' | b'd') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// The cards of one HDU, in file order (without the `END` card), with the file and HDU they
/// come from so that every error can name them.
#[derive(Clone)]
pub struct Header {
    file: Arc<PathBuf>,
    hdu: usize,
    cards: Vec<Card>,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("file", &self.file)
            .field("hdu", &self.hdu)
            .field("cards", &self.cards.len())
            .finish()
    }
}

impl Header {
    /// A header made of the given cards (`END` excluded).
    pub fn new(file: impl Into<PathBuf>, hdu: usize, cards: Vec<Card>) -> Header {
        Header {
            file: Arc::new(file.into()),
            hdu,
            cards,
        }
    }

    pub(crate) fn with_arc(file: Arc<PathBuf>, hdu: usize, cards: Vec<Card>) -> Header {
        Header { file, hdu, cards }
    }

    /// Parses a header from text: one card per line (lines longer than 80 characters are an
    /// error), or 80-character records without newlines. Stops at `END`. Meant for tests
    /// and for headers kept outside FITS files.
    pub fn from_text(
        file: impl Into<PathBuf>,
        hdu: usize,
        text: &str,
    ) -> Result<Header, ImageError> {
        let file: PathBuf = file.into();
        let mut cards = Vec::new();
        let lines: Vec<&str> = if text.contains('\n') {
            text.lines().collect()
        } else {
            let mut v = Vec::new();
            let mut s = text;
            while !s.is_empty() {
                let cut = s.char_indices().nth(CARD_LEN).map_or(s.len(), |(i, _)| i);
                v.push(&s[..cut]);
                s = &s[cut..];
            }
            v
        };
        for (i, line) in lines.into_iter().enumerate() {
            let card = Card::from_text(line).ok_or_else(|| ImageError::Card {
                file: file.clone(),
                hdu,
                card: i + 1,
                keyword: line.chars().take(8).collect::<String>().trim().to_string(),
                message: format!("card is {} characters long, more than 80", line.len()),
            })?;
            if card.keyword() == "END" {
                break;
            }
            cards.push(card);
        }
        Ok(Header::new(file, hdu, cards))
    }

    /// The file the header was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    pub(crate) fn file_arc(&self) -> Arc<PathBuf> {
        Arc::clone(&self.file)
    }

    /// The HDU number (0 = primary).
    pub fn hdu(&self) -> usize {
        self.hdu
    }

    /// Number of cards (without `END`).
    pub fn len(&self) -> usize {
        self.cards.len()
    }

    /// Whether the header has no card.
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// The cards in order.
    pub fn cards(&self) -> &[Card] {
        &self.cards
    }

    /// The raw 80-character cards in order (`END` excluded).
    pub fn iter_raw(&self) -> impl Iterator<Item = &[u8; CARD_LEN]> + '_ {
        self.cards.iter().map(|c| c.raw())
    }

    /// Position (0-based) and card of the first card with this keyword.
    pub fn find(&self, keyword: &str) -> Option<(usize, &Card)> {
        let key = normalise_key(keyword);
        self.cards
            .iter()
            .enumerate()
            .find(|(_, c)| c.keyword == key)
    }

    /// Whether the keyword is present.
    pub fn contains(&self, keyword: &str) -> bool {
        self.find(keyword).is_some()
    }

    /// An error about the card at 0-based position `index`.
    pub fn card_error(&self, index: usize, message: impl Into<String>) -> ImageError {
        ImageError::Card {
            file: self.file.to_path_buf(),
            hdu: self.hdu,
            card: index + 1,
            keyword: self
                .cards
                .get(index)
                .map(|c| c.keyword.clone())
                .unwrap_or_default(),
            message: message.into(),
        }
    }

    /// An error about a keyword that is absent.
    pub fn missing(&self, keyword: &str) -> ImageError {
        ImageError::MissingKeyword {
            file: self.file.to_path_buf(),
            hdu: self.hdu,
            keyword: keyword.to_string(),
        }
    }

    fn typed<T>(
        &self,
        keyword: &str,
        what: &str,
        f: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, ImageError> {
        let Some((i, card)) = self.find(keyword) else {
            return Ok(None);
        };
        match card.value() {
            Value::Malformed(m) => Err(self.card_error(i, m.clone())),
            v => f(v).map(Some).ok_or_else(|| {
                self.card_error(i, format!("expected {what}, found {}", describe(v)))
            }),
        }
    }

    /// A string value, long strings (`&` + `CONTINUE`) joined. `Ok(None)` when absent.
    pub fn get_str(&self, keyword: &str) -> Result<Option<String>, ImageError> {
        let Some((i, card)) = self.find(keyword) else {
            return Ok(None);
        };
        let mut s = match card.value() {
            Value::Str(s) => s.clone(),
            Value::Malformed(m) => return Err(self.card_error(i, m.clone())),
            v => {
                return Err(self.card_error(i, format!("expected a string, found {}", describe(v))));
            }
        };
        let mut j = i + 1;
        while s.ends_with('&') {
            match self.cards.get(j) {
                Some(c) if c.keyword == "CONTINUE" => match c.value() {
                    Value::Str(more) => {
                        s.pop();
                        s.push_str(more);
                    }
                    Value::Malformed(m) => {
                        return Err(self.card_error(j, format!("CONTINUE of {keyword}: {m}")));
                    }
                    v => {
                        return Err(self.card_error(
                            j,
                            format!(
                                "CONTINUE of {keyword}: expected a string, found {}",
                                describe(v)
                            ),
                        ));
                    }
                },
                _ => break,
            }
            j += 1;
        }
        Ok(Some(s))
    }

    /// A real value (integers are accepted). `Ok(None)` when absent.
    pub fn get_f64(&self, keyword: &str) -> Result<Option<f64>, ImageError> {
        self.typed(keyword, "a number", |v| match v {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        })
    }

    /// An integer value. `Ok(None)` when absent.
    pub fn get_i64(&self, keyword: &str) -> Result<Option<i64>, ImageError> {
        self.typed(keyword, "an integer", |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
    }

    /// A logical value. `Ok(None)` when absent.
    pub fn get_bool(&self, keyword: &str) -> Result<Option<bool>, ImageError> {
        self.typed(keyword, "a logical (T or F)", |v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        })
    }

    /// A mandatory integer.
    pub fn require_i64(&self, keyword: &str) -> Result<i64, ImageError> {
        self.get_i64(keyword)?.ok_or_else(|| self.missing(keyword))
    }
}

fn normalise_key(keyword: &str) -> String {
    let k = keyword.trim();
    let k = k.strip_prefix("HIERARCH ").unwrap_or(k);
    k.to_ascii_uppercase()
}

fn describe(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("the string {s:?}"),
        Value::Bool(b) => format!("the logical {}", if *b { "T" } else { "F" }),
        Value::Int(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the real {f}"),
        Value::Complex(c) => format!("the complex {c}"),
        Value::Undefined => "an undefined value".into(),
        Value::None => "no value".into(),
        Value::Malformed(m) => m.clone(),
    }
}

/// Formats a real for a fixed-format card value: shortest round-trip digits, always with a
/// decimal point, exponent as `E`.
pub(crate) fn format_real(v: f64) -> String {
    let s = format!("{v:?}");
    if let Some((mant, exp)) = s.split_once('e') {
        let mant = if mant.contains('.') {
            mant.to_string()
        } else {
            format!("{mant}.0")
        };
        format!("{mant}E{exp}")
    } else if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// A fixed-format value card: keyword, `= `, the value right-justified to column 30 (or
/// left-justified from column 11 when longer), then ` / comment` as far as it fits.
pub(crate) fn value_card(keyword: &str, value: &str, comment: Option<&str>) -> Card {
    let mut text = format!("{keyword:<8}= {value:>20}");
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        text.push_str(" / ");
        text.push_str(c);
    }
    let mut text: String = text.chars().filter(|c| c.is_ascii()).collect();
    text.truncate(CARD_LEN);
    let mut raw = [b' '; CARD_LEN];
    raw[..text.len()].copy_from_slice(text.as_bytes());
    Card::parse(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(s: &str) -> Card {
        Card::from_text(s).unwrap()
    }

    #[test]
    fn values() {
        assert_eq!(
            card("NAXIS   =                    2 / axes").value(),
            &Value::Int(2)
        );
        assert_eq!(
            card("CDELT1  =  -6.666666666667D-02").value(),
            &Value::Float(-6.666666666667e-2)
        );
        assert_eq!(
            card("SIMPLE  =                    T").value(),
            &Value::Bool(true)
        );
        assert_eq!(
            card("OBJECT  = 'it''s   ' / c").value(),
            &Value::Str("it's".into())
        );
        assert_eq!(card("X       =").value(), &Value::Undefined);
        assert!(matches!(
            card("DATE    = 2011-09-01").value(),
            Value::Malformed(_)
        ));
        assert!(matches!(
            card("S       = 'abc").value(),
            Value::Malformed(_)
        ));
        assert_eq!(card("COMMENT = 'x'").value(), &Value::None);
        let h = card("HIERARCH ESO DET CHIP ID = 'ccd1' / chip");
        assert_eq!(h.keyword(), "ESO DET CHIP ID");
        assert_eq!(h.value(), &Value::Str("ccd1".into()));
        assert_eq!(
            card("CRPIX1  =                150.5 / Reference pixel")
                .comment()
                .as_deref(),
            Some("Reference pixel")
        );
    }

    #[test]
    fn long_strings() {
        let h = Header::new(
            "t.fits",
            0,
            vec![
                card("LONG    = 'abc&'"),
                card("CONTINUE  'def&'"),
                card("CONTINUE  'ghi' / end"),
            ],
        );
        assert_eq!(h.get_str("long").unwrap().as_deref(), Some("abcdefghi"));
    }

    #[test]
    fn reals() {
        for v in [1.0, -0.5, 1e-7, 150.5, 1.5e20, -3.25e-300, 0.1 + 0.2] {
            let s = format_real(v);
            assert!(s.contains('.'), "{s}");
            assert!(is_real_literal(&s), "{s}");
            assert_eq!(s.replace('E', "e").parse::<f64>().unwrap(), v);
        }
    }
}
