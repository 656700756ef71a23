//! A small, strict-enough XML reader for TwiML. The server's TwiML is input under test, so
//! every malformed document must come back as an error, never a panic.

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element(Element),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The concatenated text directly inside, trimmed.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s.trim().to_owned()
    }
}

/// Parse a TwiML document; the root must be `<Response>`.
pub fn parse_response(doc: &str) -> Result<Element, String> {
    let root = parse(doc)?;
    if root.name != "Response" {
        return Err(format!("the root element is <{}>, not <Response>", root.name));
    }
    Ok(root)
}

pub fn parse(doc: &str) -> Result<Element, String> {
    let mut p = Parser { s: doc.as_bytes(), i: 0 };
    p.skip_misc()?;
    if p.peek() != Some(b'<') {
        return Err("the document does not start with an element".into());
    }
    let root = p.element(0)?;
    p.skip_misc()?;
    if p.i < p.s.len() {
        return Err("content after the root element".into());
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn starts(&self, pat: &str) -> bool {
        self.s[self.i..].starts_with(pat.as_bytes())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn skip_until(&mut self, end: &str) -> Result<usize, String> {
        let start = self.i;
        while self.i < self.s.len() {
            if self.starts(end) {
                self.i += end.len();
                return Ok(start);
            }
            self.i += 1;
        }
        Err(format!("unterminated construct (expected '{end}')"))
    }

    /// Whitespace, the XML declaration, comments, processing instructions and a doctype.
    fn skip_misc(&mut self) -> Result<(), String> {
        // A UTF-8 byte-order mark is legal before the declaration.
        if self.starts("\u{feff}") {
            self.i += 3;
        }
        loop {
            self.skip_ws();
            if self.starts("<?") {
                self.skip_until("?>")?;
            } else if self.starts("<!--") {
                self.skip_until("-->")?;
            } else if self.starts("<!DOCTYPE") {
                self.skip_until(">")?;
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':') || c >= 0x80 {
                self.i += 1;
            } else {
                break;
            }
        }
        if start == self.i {
            return Err(format!("expected a name at byte {}", self.i));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn element(&mut self, depth: usize) -> Result<Element, String> {
        if depth > MAX_DEPTH {
            return Err("elements nested too deeply".into());
        }
        self.i += 1; // '<'
        let name = self.name()?;
        let mut el = Element { name, ..Default::default() };
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'/') => {
                    self.i += 1;
                    if self.peek() != Some(b'>') {
                        return Err(format!("malformed empty element <{}>", el.name));
                    }
                    self.i += 1;
                    return Ok(el);
                }
                Some(b'>') => {
                    self.i += 1;
                    break;
                }
                Some(_) => {
                    let k = self.name()?;
                    self.skip_ws();
                    if self.peek() != Some(b'=') {
                        return Err(format!("attribute '{k}' of <{}> has no value", el.name));
                    }
                    self.i += 1;
                    self.skip_ws();
                    let quote = match self.peek() {
                        Some(q @ (b'"' | b'\'')) => q,
                        _ => return Err(format!("attribute '{k}' of <{}> is not quoted", el.name)),
                    };
                    self.i += 1;
                    let start = self.i;
                    while self.peek().is_some_and(|c| c != quote) {
                        self.i += 1;
                    }
                    if self.peek().is_none() {
                        return Err(format!("unterminated attribute '{k}'"));
                    }
                    let raw = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    self.i += 1;
                    if el.attrs.iter().any(|(a, _)| *a == k) {
                        return Err(format!("duplicate attribute '{k}' on <{}>", el.name));
                    }
                    el.attrs.push((k, unescape(&raw)?));
                }
                None => return Err(format!("unterminated tag <{}>", el.name)),
            }
        }
        // Content.
        loop {
            if self.i >= self.s.len() {
                return Err(format!("<{}> is not closed", el.name));
            }
            if self.starts("</") {
                self.i += 2;
                let close = self.name()?;
                self.skip_ws();
                if self.peek() != Some(b'>') {
                    return Err(format!("malformed closing tag </{close}>"));
                }
                self.i += 1;
                if close != el.name {
                    return Err(format!("<{}> closed by </{close}>", el.name));
                }
                return Ok(el);
            } else if self.starts("<!--") {
                self.skip_until("-->")?;
            } else if self.starts("<![CDATA[") {
                self.i += 9;
                let start = self.skip_until("]]>")?;
                el.children.push(Node::Text(String::from_utf8_lossy(&self.s[start..self.i - 3]).into_owned()));
            } else if self.starts("<?") {
                self.skip_until("?>")?;
            } else if self.peek() == Some(b'<') {
                let child = self.element(depth + 1)?;
                el.children.push(Node::Element(child));
            } else {
                let start = self.i;
                while self.peek().is_some_and(|c| c != b'<') {
                    self.i += 1;
                }
                let raw = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                el.children.push(Node::Text(unescape(&raw)?));
            }
        }
    }
}

fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('&') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(end) = after.find(';') else {
            return Err(format!("bare '&' in '{}'", s.chars().take(60).collect::<String>()));
        };
        let ent = &after[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(h) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or_else(|| format!("unknown entity '&{ent};'"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connect_stream() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><!-- hi --><Connect><Stream url="wss://h/ws?a=1&amp;b=2"><Parameter name="call_id" value="c&lt;1"/></Stream></Connect><Say>Bye &amp; thanks</Say></Response>"#;
        let r = parse_response(doc).unwrap();
        let v: Vec<_> = r.elements().collect();
        assert_eq!(v[0].name, "Connect");
        let stream = v[0].elements().next().unwrap();
        assert_eq!(stream.attr("url"), Some("wss://h/ws?a=1&b=2"));
        assert_eq!(stream.elements().next().unwrap().attr("value"), Some("c<1"));
        assert_eq!(v[1].text(), "Bye & thanks");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in
            ["", "hello", "<Response>", "<Response></Say>", "<Response a=1/>", "<Response>&bogus;</Response>", "<Foo/>", "<Response/>x", "<", "<Response><"]
        {
            assert!(parse_response(bad).is_err(), "{bad:?}");
        }
        assert!(parse_response("<Response/>").is_ok());
    }
}
