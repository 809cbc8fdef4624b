//! How records are encoded: one version byte, then postcard. postcard is compact and fast,
//! but not self-describing, so every record type carries the version of its layout and a
//! newer binary upgrades older layouts as it reads them. A record from a newer layout is an
//! error that names itself, never a silent misread.
//!
//! Docker-shaped documents inside a record (a container's `Config`, `HostConfig`) are open
//! JSON objects that grow with the API: they are stored as JSON text ([`as_json`]).

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Serialize};

/// A type the store keeps, in the table [`Record::TABLE`].
pub trait Record: Serialize + DeserializeOwned {
    const TABLE: &'static str;
    /// The layout version written now. Bump it when the encoding changes, and teach
    /// [`Record::upgrade`] to read the old one.
    const VERSION: u8;

    /// Reads a record written with an older layout `version`.
    fn upgrade(version: u8, _bytes: &[u8]) -> Result<Self> {
        bail!("no upgrade from layout version {version} of {} records", Self::TABLE)
    }
}

pub fn encode<T: Record>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![T::VERSION];
    out.extend(postcard::to_allocvec(value).with_context(|| format!("encoding a {} record", T::TABLE))?);
    Ok(out)
}

pub fn decode<T: Record>(bytes: &[u8]) -> Result<T> {
    let (&version, body) = bytes.split_first().with_context(|| format!("empty {} record", T::TABLE))?;
    if version == T::VERSION {
        postcard::from_bytes(body).with_context(|| format!("decoding a {} record (layout {version})", T::TABLE))
    } else if version < T::VERSION {
        T::upgrade(version, body)
    } else {
        bail!("{} record has layout {version}, newer than this berth understands ({})", T::TABLE, T::VERSION)
    }
}

/// `#[serde(with = "as_json")]`: a field stored as JSON text.
pub mod as_json {
    use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(value).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V2 {
        a: u32,
        b: String,
        #[serde(with = "as_json")]
        doc: serde_json::Value,
    }

    impl Record for V2 {
        const TABLE: &'static str = "test";
        const VERSION: u8 = 2;
        fn upgrade(version: u8, bytes: &[u8]) -> Result<Self> {
            #[derive(Deserialize)]
            struct V1 {
                a: u32,
            }
            anyhow::ensure!(version == 1);
            let old: V1 = postcard::from_bytes(bytes)?;
            Ok(V2 { a: old.a, b: "upgraded".into(), doc: serde_json::json!({}) })
        }
    }

    #[test]
    fn round_trips_upgrades_and_refuses_newer() {
        let v = V2 { a: 7, b: "x".into(), doc: serde_json::json!({"Healthcheck": {"Test": ["NONE"]}}) };
        assert_eq!(decode::<V2>(&encode(&v).unwrap()).unwrap(), v);
        let mut old = vec![1u8];
        old.extend(postcard::to_allocvec(&7u32).unwrap());
        assert_eq!(decode::<V2>(&old).unwrap().b, "upgraded");
        let mut newer = encode(&v).unwrap();
        newer[0] = 3;
        assert!(decode::<V2>(&newer).unwrap_err().to_string().contains("newer than this berth"));
        assert!(decode::<V2>(&[]).is_err());
        let mut flipped = encode(&v).unwrap();
        flipped.truncate(3);
        assert!(decode::<V2>(&flipped).is_err());
    }
}
