//! Unit conversion for ADQL's `IN_UNIT`, over the VOUnit syntax the catalogs carry.
//!
//! Hand-written because no maintained Rust crate parses VOUnit strings. It covers products
//! (`.` or `*`), one division (`/`), integer powers (`m2`, `s-1`, `m**2`), SI prefixes and the
//! astronomical units archives use: angles (rad, deg, arcmin, arcsec, mas, uas), time (s, min,
//! h, d, yr, a), length (m, AU/au, pc, lyr, solRad), mass (g, kg, solMass), Jy, and mag,
//! which converts only to itself. Anything else is declared unsupported by the error.

use std::f64::consts::PI;

/// Exponents of angle, time, length, mass, Jy, mag.
type Dim = [i32; 6];

const ANGLE: Dim = [1, 0, 0, 0, 0, 0];
const TIME: Dim = [0, 1, 0, 0, 0, 0];
const LENGTH: Dim = [0, 0, 1, 0, 0, 0];
const MASS: Dim = [0, 0, 0, 1, 0, 0];
const JY: Dim = [0, 0, 0, 0, 1, 0];
const MAG: Dim = [0, 0, 0, 0, 0, 1];
const NONE: Dim = [0; 6];

/// (symbol, factor to the base unit, dimension, accepts SI prefixes)
const SYMBOLS: &[(&str, f64, Dim, bool)] = &[
    ("rad", 1.0, ANGLE, true),
    ("deg", PI / 180.0, ANGLE, false),
    ("arcmin", PI / 180.0 / 60.0, ANGLE, false),
    ("arcsec", PI / 180.0 / 3600.0, ANGLE, false),
    ("mas", PI / 180.0 / 3.6e6, ANGLE, false),
    ("uas", PI / 180.0 / 3.6e9, ANGLE, false),
    ("s", 1.0, TIME, true),
    ("min", 60.0, TIME, false),
    ("h", 3600.0, TIME, false),
    ("d", 86400.0, TIME, false),
    ("yr", 365.25 * 86400.0, TIME, true),
    ("a", 365.25 * 86400.0, TIME, true),
    ("m", 1.0, LENGTH, true),
    ("AU", 1.495_978_707e11, LENGTH, false),
    ("au", 1.495_978_707e11, LENGTH, false),
    ("pc", 3.085_677_581_491_367e16, LENGTH, true),
    ("lyr", 9.460_730_472_580_8e15, LENGTH, false),
    ("solRad", 6.957e8, LENGTH, false),
    ("g", 1e-3, MASS, true),
    ("solMass", 1.988_47e30, MASS, false),
    ("Jy", 1.0, JY, true),
    ("mag", 1.0, MAG, false),
    ("%", 0.01, NONE, false),
    ("---", 1.0, NONE, false),
    ("", 1.0, NONE, false),
];

const PREFIXES: &[(&str, f64)] = &[
    ("da", 1e1),
    ("y", 1e-24),
    ("z", 1e-21),
    ("a", 1e-18),
    ("f", 1e-15),
    ("p", 1e-12),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("c", 1e-2),
    ("d", 1e-1),
    ("h", 1e2),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
    ("Z", 1e21),
    ("Y", 1e24),
];

fn symbol(s: &str) -> Option<(f64, Dim)> {
    if let Some(&(_, f, d, _)) = SYMBOLS.iter().find(|x| x.0 == s) {
        return Some((f, d));
    }
    for (p, pf) in PREFIXES {
        if let Some(rest) = s.strip_prefix(p)
            && let Some(&(_, f, d, ok)) = SYMBOLS.iter().find(|x| x.0 == rest && x.3)
            && ok
        {
            return Some((pf * f, d));
        }
    }
    None
}

fn term(t: &str, unit: &str) -> Result<(f64, Dim), String> {
    let t = t.trim();
    let (base, pow) = if let Some((b, p)) = t.split_once('^') {
        (b, p.trim_matches(|c| c == '(' || c == ')'))
    } else {
        let i = t
            .find(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
            .filter(|&i| i > 0)
            .unwrap_or(t.len());
        (&t[..i], &t[i..])
    };
    let pow: i32 = if pow.is_empty() {
        1
    } else {
        pow.parse()
            .map_err(|_| format!("cannot read the power in unit '{unit}'"))?
    };
    let (f, d) = symbol(base)
        .ok_or_else(|| format!("unit '{unit}' is not supported (unknown symbol '{base}')"))?;
    Ok((f.powi(pow), d.map(|x| x * pow)))
}

fn parse(unit: &str) -> Result<(f64, Dim), String> {
    // `**` (and `^`) mark a power; normalise before splitting products on `*`.
    let normalised = unit.trim().replace("**", "^");
    let u = normalised.as_str();
    let (num, den) = match u.split_once('/') {
        Some((n, d)) => (n, Some(d)),
        None => (u, None),
    };
    let mut f = 1.0;
    let mut dim = NONE;
    for t in num.split(['.', '*']).filter(|t| !t.is_empty() && *t != "1") {
        let (tf, td) = term(t, unit)?;
        f *= tf;
        for i in 0..6 {
            dim[i] += td[i];
        }
    }
    if let Some(den) = den {
        for t in den.split(['.', '*']).filter(|t| !t.is_empty()) {
            let (tf, td) = term(t, unit)?;
            f /= tf;
            for i in 0..6 {
                dim[i] -= td[i];
            }
        }
    }
    Ok((f, dim))
}

/// The factor that converts a value in `from` to `to`, or why it cannot.
pub(crate) fn factor(from: &str, to: &str) -> Result<f64, String> {
    let (ff, fd) = parse(from)?;
    let (tf, td) = parse(to)?;
    if fd != td {
        return Err(format!(
            "cannot convert '{from}' to '{to}': the units measure different quantities"
        ));
    }
    Ok(ff / tf)
}

#[cfg(test)]
mod tests {
    use super::factor;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn angles_times_and_composites() {
        assert!(close(factor("mas", "arcsec").unwrap(), 1e-3));
        assert!(close(factor("deg", "arcmin").unwrap(), 60.0));
        assert!(close(
            factor("rad", "deg").unwrap(),
            180.0 / std::f64::consts::PI
        ));
        assert!(close(factor("mas/yr", "arcsec/a").unwrap(), 1e-3));
        assert!(close(factor("km/s", "m/s").unwrap(), 1e3));
        assert!(close(factor("kpc", "pc").unwrap(), 1e3));
        assert!(close(factor("m2", "km**2").unwrap(), 1e-6));
        assert!(close(factor("mJy", "Jy").unwrap(), 1e-3));
        assert!(close(factor("h", "min").unwrap(), 60.0));
    }

    #[test]
    fn incompatible_and_unknown_units_are_errors() {
        assert!(
            factor("mas", "km")
                .unwrap_err()
                .contains("different quantities")
        );
        assert!(factor("mag", "Jy").is_err());
        assert!(factor("furlong", "m").unwrap_err().contains("furlong"));
    }
}
