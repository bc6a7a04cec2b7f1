//! De-aggregation of records written by the Kinesis Producer Library (KPL).
//!
//! An aggregated record is the 4-byte magic `F3 89 9A C2`, a protobuf
//! `AggregatedRecord` (partition key table, explicit hash key table, records),
//! and the 16-byte MD5 of the protobuf. Anything else, including a record
//! whose checksum does not match, is an ordinary record.

use md5::{Digest, Md5};

use crate::record::{Position, RawRecord};

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// One user record inside an aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Its partition key.
    pub partition_key: String,
    /// Its data.
    pub data: Vec<u8>,
}

/// Appends the records of one Kinesis record to `out`: its user records
/// when it is an aggregate (each with its own partition key; they share
/// `position`'s sequence number), or itself. An aggregate with no user
/// records is appended as itself, rejected (stage `decode`). How many were
/// appended.
pub fn push_records(out: &mut Vec<RawRecord>, data: Vec<u8>, position: Position) -> usize {
    let raw = RawRecord::new;
    match deaggregate(&data) {
        // Nothing to deliver, but the Kinesis record arrived: it is
        // accounted for as a dead letter rather than vanishing.
        Some(users) if users.is_empty() => {
            out.push(RawRecord {
                rejected: Some("the KPL aggregate holds no user records".into()),
                ..raw(data, position)
            });
            1
        }
        Some(users) => {
            let n = users.len();
            out.extend(users.into_iter().map(|u| {
                let position = Position {
                    partition_key: Some(u.partition_key),
                    ..position.clone()
                };
                raw(u.data, position)
            }));
            n
        }
        None => {
            out.push(raw(data, position));
            1
        }
    }
}

/// The user records of a KPL-aggregated record, or `None` when `data` is not one.
pub fn deaggregate(data: &[u8]) -> Option<Vec<UserRecord>> {
    if data.len() < MAGIC.len() + DIGEST_LEN || data[..4] != MAGIC {
        return None;
    }
    let body = &data[4..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    let mut keys = Vec::new();
    let mut records = Vec::new();
    let mut r = Reader(body);
    while !r.0.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => keys.push(String::from_utf8(r.bytes()?.to_vec()).ok()?),
            (3, 2) => records.push(record(r.bytes()?)?),
            _ => r.skip(wire)?,
        }
    }
    records
        .into_iter()
        .map(|(index, data)| {
            Some(UserRecord {
                partition_key: keys.get(usize::try_from(index).ok()?)?.clone(),
                data,
            })
        })
        .collect()
}

/// A `Record` message: (partition key index, data).
fn record(bytes: &[u8]) -> Option<(u64, Vec<u8>)> {
    let mut r = Reader(bytes);
    let (mut index, mut data) = (None, Vec::new());
    while !r.0.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 0) => index = Some(r.varint()?),
            (3, 2) => data = r.bytes()?.to_vec(),
            _ => r.skip(wire)?,
        }
    }
    Some((index?, data))
}

/// A protobuf wire-format reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        Some((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(b)
    }

    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.0.get(8..).map(|rest| self.0 = rest),
            2 => self.bytes().map(|_| ()),
            5 => self.0.get(4..).map(|rest| self.0 = rest),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn field_bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    /// Encodes records the way the KPL aggregates them.
    pub(crate) fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut keys: Vec<&str> = Vec::new();
        let mut body = Vec::new();
        for (k, _) in records {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
        for k in &keys {
            field_bytes(1, k.as_bytes(), &mut body);
        }
        for (k, data) in records {
            let mut rec = Vec::new();
            varint(1 << 3, &mut rec);
            varint(keys.iter().position(|x| x == k).unwrap() as u64, &mut rec);
            field_bytes(3, data, &mut rec);
            field_bytes(3, &rec, &mut body);
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(Md5::digest(&body).as_slice());
        out
    }

    #[test]
    fn an_aggregate_becomes_its_user_records_and_anything_else_itself() {
        let position = Position {
            partition_key: Some("outer".into()),
            sequence_number: Some("49".into()),
            ..Position::default()
        };
        let mut out = Vec::new();
        let data = aggregate(&[("a", b"1"), ("b", b"2")]);
        assert_eq!(push_records(&mut out, data, position.clone()), 2);
        assert_eq!(push_records(&mut out, b"3".to_vec(), position), 1);
        let got: Vec<(&[u8], Option<&str>, Option<&str>)> = out
            .iter()
            .map(|r| {
                (
                    r.data.as_slice(),
                    r.position.partition_key.as_deref(),
                    r.position.sequence_number.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (&b"1"[..], Some("a"), Some("49")),
                (&b"2"[..], Some("b"), Some("49")),
                (&b"3"[..], Some("outer"), Some("49")),
            ]
        );
    }

    #[test]
    fn an_aggregate_with_no_user_records_is_rejected_not_dropped() {
        let mut out = Vec::new();
        let empty = aggregate(&[]);
        assert_eq!(deaggregate(&empty), Some(Vec::new()));
        assert_eq!(
            push_records(&mut out, empty.clone(), Position::default()),
            1
        );
        assert_eq!(out[0].data, empty);
        assert_eq!(
            out[0].rejected.as_deref(),
            Some("the KPL aggregate holds no user records")
        );
    }

    #[test]
    fn splits_an_aggregated_record() {
        let agg = aggregate(&[
            ("a", b"{\"n\":1}"),
            ("b", b"{\"n\":2}"),
            ("a", b"{\"n\":3}"),
        ]);
        let recs = deaggregate(&agg).unwrap();
        let got: Vec<(&str, &[u8])> = recs
            .iter()
            .map(|r| (r.partition_key.as_str(), r.data.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", &b"{\"n\":1}"[..]),
                ("b", b"{\"n\":2}"),
                ("a", b"{\"n\":3}")
            ]
        );
    }

    #[test]
    fn leaves_other_records_alone() {
        assert_eq!(deaggregate(b"{\"plain\":true}"), None);
        let mut agg = aggregate(&[("a", b"x")]);
        let last = agg.len() - 1;
        agg[last] ^= 1; // a wrong checksum: not an aggregate
        assert_eq!(deaggregate(&agg), None);
    }
}
