//! Reading data: a field by path with a default, rounding, one CSV line, a URL.

use rhai::{Array, Dynamic, Engine, FLOAT, INT, Map};

use super::{Out, fail};

pub fn register(e: &mut Engine) {
    // One version per type of value and default, not one taking any value:
    // a function with a `Dynamic` parameter makes Rhai look for such
    // versions of other calls too, on every record.
    macro_rules! get_with_default {
        ($($t:ty),*) => {$(
            e.register_fn("get", |v: Map, path: &str, default: $t| {
                get(v.into(), path).unwrap_or_else(|| default.into())
            });
            e.register_fn("get", |v: Array, path: &str, default: $t| {
                get(v.into(), path).unwrap_or_else(|| default.into())
            });
            e.register_fn("get", |_: (), _: &str, default: $t| Dynamic::from(default));
        )*};
    }
    get_with_default!(INT, FLOAT, bool, rhai::ImmutableString, char, Map, Array);
    e.register_fn("get", |v: Map, path: &str, (): ()| {
        get(v.into(), path).unwrap_or_default()
    });
    e.register_fn("get", |v: Array, path: &str, (): ()| {
        get(v.into(), path).unwrap_or_default()
    });
    e.register_fn("get", |_: (), _: &str, (): ()| Dynamic::UNIT);
    e.register_fn("round_to", |x: FLOAT, digits: INT| round_to(x, digits))
        .register_fn("round_to", |x: INT, digits: INT| {
            round_to(x as FLOAT, digits)
        })
        .register_fn("parse_csv", |line: &str| csv(line, ","))
        .register_fn("parse_csv", csv)
        .register_fn("parse_url", parse_url);
}

/// The value at a dotted `path` (`a.b.0.c`: keys of maps, indexes of
/// arrays, negative from the end); `None` when a step is missing or `()`.
fn get(v: Dynamic, path: &str) -> Option<Dynamic> {
    let mut at = v;
    for step in path.split('.') {
        let next = if let Some(m) = at.read_lock::<Map>() {
            m.get(step).cloned()
        } else if let Some(a) = at.read_lock::<Array>() {
            let i: i64 = step.parse().ok()?;
            let i = if i < 0 { a.len() as i64 + i } else { i };
            usize::try_from(i).ok().and_then(|i| a.get(i).cloned())
        } else {
            None
        };
        at = next?;
        if at.is_unit() {
            return None;
        }
    }
    Some(at)
}

/// `x` rounded to `digits` decimals, half away from zero on its decimal
/// form (`round_to(2.675, 2)` is `2.68`).
fn round_to(x: FLOAT, digits: INT) -> Out<FLOAT> {
    if !(0..=15).contains(&digits) {
        return fail(
            "round_to",
            format!("the number of decimals must be from 0 to 15, not {digits}"),
        );
    }
    if !x.is_finite() {
        return Ok(x);
    }
    // The shortest decimal form of `x` is what the user wrote and sees;
    // rounding it, not the binary value, gives the expected digits.
    let text = format!("{x}");
    let Some(dot) = text.find('.') else {
        return Ok(x);
    };
    let keep = dot + 1 + digits as usize;
    if text.len() <= keep || text.contains(['e', 'E']) {
        return Ok(x);
    }
    let up = text.as_bytes()[keep] >= b'5';
    let mut kept: FLOAT = text[..keep].trim_end_matches('.').parse().unwrap_or(x);
    if up {
        let step = 10f64.powi(-(digits as i32));
        kept += if x < 0.0 { -step } else { step };
        // The sum's binary error must not show: print and read it at `digits`.
        kept = format!("{kept:.prec$}", prec = digits as usize)
            .parse()
            .unwrap_or(kept);
    }
    Ok(kept)
}

/// One CSV line (RFC 4180 quoting: `"a, b"`, `""` for a quote) as strings.
fn csv(line: &str, delimiter: &str) -> Out<Array> {
    let &[delimiter] = delimiter.as_bytes() else {
        return fail(
            "parse_csv",
            format!("the delimiter must be one ASCII character, not {delimiter:?}"),
        );
    };
    if !delimiter.is_ascii() || delimiter == b'"' {
        return fail(
            "parse_csv",
            format!("{:?} cannot be a delimiter", delimiter as char),
        );
    }
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(line.as_bytes());
    let mut records = reader.records();
    let fields = match records.next() {
        None => return Ok(Array::new()),
        Some(Ok(r)) => r.iter().map(|f| Dynamic::from(f.to_owned())).collect(),
        Some(Err(e)) => return fail("parse_csv", e),
    };
    if records.next().is_some() {
        return fail(
            "parse_csv",
            "the text holds more than one line (split it first, or quote the line break)",
        );
    }
    Ok(fields)
}

/// A URL's parts: `scheme`, `host`, `port` (as written, else `()`),
/// `path`, `query` (a map; a repeated key keeps its last value),
/// `fragment`, `user` and `password`.
fn parse_url(s: &str) -> Out<Map> {
    let url = match url::Url::parse(s) {
        Ok(u) => u,
        Err(e) => return fail("parse_url", format!("{s:?} is not a URL: {e}")),
    };
    let text = |v: Option<&str>| v.map_or(Dynamic::UNIT, |s| Dynamic::from(s.to_owned()));
    let mut query = Map::new();
    for (k, v) in url.query_pairs() {
        query.insert(k.as_ref().into(), v.into_owned().into());
    }
    let mut m = Map::new();
    m.insert("scheme".into(), url.scheme().into());
    m.insert("host".into(), text(url.host_str()));
    m.insert(
        "port".into(),
        url.port().map_or(Dynamic::UNIT, |p| INT::from(p).into()),
    );
    m.insert("path".into(), url.path().into());
    m.insert("query".into(), query.into());
    m.insert("fragment".into(), text(url.fragment()));
    m.insert(
        "user".into(),
        text(Some(url.username()).filter(|u| !u.is_empty())),
    );
    m.insert("password".into(), text(url.password()));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{error, json};

    #[test]
    fn get_reads_a_path_or_gives_the_default() {
        let r = r#"let r = #{ a: #{ b: [#{ c: 5 }, #{ c: () }] } };"#;
        let at = |expr: &str| json(&format!("{r} {expr}"));
        assert_eq!(at(r#"get(r, "a.b.0.c", 0)"#), "5");
        assert_eq!(at(r#"get(r, "a.b.-1.c", 0)"#), "0");
        assert_eq!(at(r#"get(r, "a.b.1.c", "none")"#), r#""none""#);
        assert_eq!(at(r#"get(r, "a.x.y", ())"#), "null");
        assert_eq!(at(r#"get(r, "a.b.9", -1)"#), "-1");
        assert_eq!(at(r#"get(r, "a.b.0", 0)"#), r#"{"c":5}"#);
        assert_eq!(at(r#"r.get("a.b.0.c", 0)"#), "5");
    }

    #[test]
    fn round_to_rounds_to_decimals_as_written() {
        assert_eq!(json("round_to(2.675, 2)"), "2.68");
        assert_eq!(json("round_to(1.005, 2)"), "1.01");
        assert_eq!(json("round_to(-1.25, 1)"), "-1.3");
        assert_eq!(json("round_to(19.999, 2)"), "20.0");
        assert_eq!(json("round_to(3.14159, 0)"), "3.0");
        assert_eq!(json("round_to(0.1 + 0.2, 2)"), "0.3");
        assert_eq!(json("round_to(7, 2)"), "7.0");
        assert_eq!(
            error("round_to(1.0, -1)"),
            "round_to: the number of decimals must be from 0 to 15, not -1"
        );
    }

    #[test]
    fn parse_csv_reads_one_line_with_quotes() {
        assert_eq!(
            json(r#"parse_csv("a,\"b, c\",\"say \"\"hi\"\"\",")"#),
            r#"["a","b, c","say \"hi\"",""]"#
        );
        assert_eq!(json(r#"parse_csv("1;2;3", ";")"#), r#"["1","2","3"]"#);
        assert_eq!(json(r#"parse_csv("a\tb", "\t")"#), r#"["a","b"]"#);
        assert_eq!(json(r#"parse_csv("")"#), "[]");
        assert_eq!(
            error(r#"parse_csv("a,b", ";;")"#),
            r#"parse_csv: the delimiter must be one ASCII character, not ";;""#
        );
        let two = error("parse_csv(\"a\\nb\")");
        assert!(
            two.starts_with("parse_csv: the text holds more than one line"),
            "{two}"
        );
    }

    #[test]
    fn parse_url_gives_the_parts() {
        assert_eq!(
            json(
                r#"parse_url("https://ana:pw@shop.example.com:8443/cart/view?item=7&ref=mail&item=9#top")"#
            ),
            r#"{"fragment":"top","host":"shop.example.com","password":"pw","path":"/cart/view","port":8443,"query":{"item":"9","ref":"mail"},"scheme":"https","user":"ana"}"#
        );
        assert_eq!(
            json(r#"parse_url("https://example.com/a%20b?q=x%20y")"#),
            r#"{"fragment":null,"host":"example.com","password":null,"path":"/a%20b","port":null,"query":{"q":"x y"},"scheme":"https","user":null}"#
        );
        assert_eq!(
            error(r#"parse_url("not a url")"#),
            r#"parse_url: "not a url" is not a URL: relative URL without a base"#
        );
    }
}
