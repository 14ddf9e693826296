//! The binary encoding of what the cluster stores and sends: a version
//! byte, then the value in postcard (a compact, documented serde format).
//! Used for raft log entries in the journal, the vote and purged-id state
//! files, marks in the store and peer messages.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The encoding's version; a decoder refuses any other.
const VERSION: u8 = 1;

/// `value`, encoded.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_extend(value, vec![VERSION])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The value `bytes` encode; an error for a wrong version or bad bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        Some((&other, _)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("encoding version {other}; this build reads version {VERSION}"),
        )),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "empty encoding")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bad_bytes_are_errors() {
        let value = (7u64, String::from("seven"), vec![1u8, 2, 3]);
        let bytes = encode(&value).expect("encode");
        assert_eq!(
            decode::<(u64, String, Vec<u8>)>(&bytes).expect("decode"),
            value
        );
        assert!(decode::<(u64, String, Vec<u8>)>(&bytes[..bytes.len() - 1]).is_err());
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(decode::<(u64, String, Vec<u8>)>(&other).is_err());
        assert!(decode::<u64>(&[]).is_err());
    }
}
