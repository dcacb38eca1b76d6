//! Reading VICI messages as `swanctl --raw` prints them:
//!
//! ```text
//! list-sa event {gw1-gw2 {uniqueid=1 state=ESTABLISHED ... child-sas {net-1 {name=net state=INSTALLED
//!   bytes-in=84 packets-in=1 ... local-ts=[198.19.10.0/24] remote-ts=[198.19.20.0/24]}}}}
//! ```
//!
//! A section is `name {...}`, a key `k=v`, a list `k=[a b]`.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    List(Vec<String>),
    Section(Vec<(String, Value)>),
}

impl Value {
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Section(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn text(&self, key: &str) -> String {
        match self.get(key) {
            Some(Value::Text(t)) => t.clone(),
            Some(Value::List(l)) => l.join(" "),
            _ => String::new(),
        }
    }

    fn number(&self, key: &str) -> u64 {
        self.text(key).parse().unwrap_or(0)
    }
}

/// Parses the `{...}` bodies of every message in `raw` (one per line).
pub fn parse(raw: &str) -> Vec<(String, Value)> {
    raw.lines()
        .filter_map(|line| {
            let open = line.find('{')?;
            let mut chars = line[open + 1..].chars().peekable();
            Some((line[..open].trim().to_string(), Value::Section(section(&mut chars))))
        })
        .collect()
}

fn section(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Vec<(String, Value)> {
    let mut items = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == '{' || c == '}' {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None | Some('}') => return items,
            Some('{') => items.push((key, Value::Section(section(chars)))),
            Some('=') => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    let mut body = String::new();
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                        body.push(c);
                    }
                    items.push((key, Value::List(body.split_whitespace().map(String::from).collect())));
                } else {
                    let mut value = String::new();
                    while let Some(&c) = chars.peek() {
                        if c.is_whitespace() || c == '}' {
                            break;
                        }
                        value.push(c);
                        chars.next();
                    }
                    items.push((key, Value::Text(value)));
                }
            }
            Some(_) => {}
        }
    }
}

/// One IKE SA and its child SAs, as `x:ipsec(...)` reports them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IkeSa {
    pub name: String,
    pub state: String,
    pub local: String,
    pub remote: String,
    pub local_port: String,
    pub remote_port: String,
    pub initiator: bool,
    pub encryption: String,
    pub dh_group: String,
    pub children: Vec<ChildSa>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ChildSa {
    pub name: String,
    pub state: String,
    pub mode: String,
    pub protocol: String,
    /// ESP in UDP (port 4500).
    pub encap: bool,
    pub encryption: String,
    pub spi_in: String,
    pub spi_out: String,
    pub bytes_in: u64,
    pub packets_in: u64,
    pub bytes_out: u64,
    pub packets_out: u64,
    pub local_ts: String,
    pub remote_ts: String,
}

/// The IKE SAs in the `list-sa` events of `swanctl --list-sas --raw`.
pub fn parse_list_sas(raw: &str) -> Vec<IkeSa> {
    let mut out = Vec::new();
    for (kind, body) in parse(raw) {
        if kind != "list-sa event" {
            continue;
        }
        let Value::Section(ikes) = body else { continue };
        for (name, ike) in ikes {
            let mut sa = IkeSa {
                name,
                state: ike.text("state"),
                local: ike.text("local-host"),
                remote: ike.text("remote-host"),
                local_port: ike.text("local-port"),
                remote_port: ike.text("remote-port"),
                initiator: ike.text("initiator") == "yes",
                encryption: format!("{}-{}", ike.text("encr-alg"), ike.text("encr-keysize")),
                dh_group: ike.text("dh-group"),
                children: vec![],
            };
            if let Some(Value::Section(children)) = ike.get("child-sas") {
                for (_, c) in children {
                    sa.children.push(ChildSa {
                        name: c.text("name"),
                        state: c.text("state"),
                        mode: c.text("mode"),
                        protocol: c.text("protocol"),
                        encap: c.text("encap") == "yes",
                        encryption: format!("{}-{}", c.text("encr-alg"), c.text("encr-keysize")),
                        spi_in: c.text("spi-in"),
                        spi_out: c.text("spi-out"),
                        bytes_in: c.number("bytes-in"),
                        packets_in: c.number("packets-in"),
                        bytes_out: c.number("bytes-out"),
                        packets_out: c.number("packets-out"),
                        local_ts: c.text("local-ts"),
                        remote_ts: c.text("remote-ts"),
                    });
                }
            }
            out.push(sa);
        }
    }
    out
}

/// Flat `key -> value` view of a parsed section, for debugging output.
pub fn flatten(value: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Text(t) => {
            out.insert(prefix.to_string(), t.clone());
        }
        Value::List(l) => {
            out.insert(prefix.to_string(), l.join(" "));
        }
        Value::Section(items) => {
            for (k, v) in items {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(v, &key, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "list-sa event {gw1-gw2 {uniqueid=1 version=2 state=ESTABLISHED local-host=198.18.1.1 local-port=4500 local-id=198.18.1.1 remote-host=198.18.2.1 remote-port=4500 remote-id=198.18.2.1 initiator=yes initiator-spi=1a2b responder-spi=3c4d encr-alg=AES_CBC encr-keysize=128 integ-alg=HMAC_SHA2_256_128 prf-alg=PRF_HMAC_SHA2_256 dh-group=MODP_2048 established=3 rekey-time=13894 child-sas {net-1 {name=net uniqueid=1 reqid=1 state=INSTALLED mode=TUNNEL protocol=ESP encap=yes spi-in=c2e7a0f4 spi-out=c7bc0f53 encr-alg=AES_GCM_16 encr-keysize=128 bytes-in=168 packets-in=2 use-in=1 bytes-out=168 packets-out=2 use-out=1 rekey-time=3382 life-time=3958 install-time=3 local-ts=[198.19.10.0/24] remote-ts=[198.19.20.0/24]}}}}
list-sas reply {}
";

    #[test]
    fn list_sas_raw_gives_ike_and_child_sas_with_counters() {
        let sas = parse_list_sas(RAW);
        assert_eq!(sas.len(), 1);
        let ike = &sas[0];
        assert_eq!((ike.name.as_str(), ike.state.as_str(), ike.initiator), ("gw1-gw2", "ESTABLISHED", true));
        assert_eq!(ike.remote_port, "4500");
        let child = &ike.children[0];
        assert_eq!((child.name.as_str(), child.state.as_str(), child.encap), ("net", "INSTALLED", true));
        assert_eq!((child.packets_in, child.bytes_in, child.packets_out, child.bytes_out), (2, 168, 2, 168));
        assert_eq!(child.local_ts, "198.19.10.0/24");
        assert_eq!(child.encryption, "AES_GCM_16-128");
    }

    #[test]
    fn an_empty_reply_has_no_sas() {
        assert!(parse_list_sas("list-sas reply {}\n").is_empty());
    }
}
