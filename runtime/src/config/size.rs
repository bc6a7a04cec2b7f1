//! Sizes in bytes as command-line options and environment variables write
//! them: `256MiB`, `64MB`, `1000000`.

/// A size in bytes, with an optional unit: `B`, `KB`, `MB`, `GB` (powers of
/// 1000) or `KiB`, `MiB`, `GiB` (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size such as `256MiB` or `1000000`"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{other}` is not a unit of size: use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_bytes("1000000"), Ok(1_000_000));
        assert_eq!(parse_bytes("256MiB"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_bytes("64MB"), Ok(64_000_000));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(
            parse_bytes("5 parsecs"),
            Err("`parsecs` is not a unit of size: use B, KB, MB, GB, KiB, MiB or GiB".into())
        );
        assert!(parse_bytes("MiB").is_err());
        assert_eq!(
            parse_bytes("99999999999GiB"),
            Err("`99999999999GiB` is too large".into())
        );
    }
}
