//! Prometheus-style durations (`5s`, `30d`, `1h30m`), as slo.yaml and the flags write them.

use std::time::Duration;

/// Parse a Prometheus-style duration: one or more `<integer><unit>` with units `ms`, `s`,
/// `m`, `h`, `d`, `w`, `y` (e.g. `5s`, `30d`, `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {s:?}: expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unit must be one of ms, s, m, h, d, w, y"
                ));
            }
        };
        let add = n
            .checked_mul(ms)
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
        total += Duration::from_millis(add);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "5", "s", "5x", "1.5s", "-1s", "5 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
