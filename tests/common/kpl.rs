//! Records as the Kinesis Producer Library writes them.

/// A record as the Kinesis Producer Library aggregates user records, each
/// given with its partition key: magic, protobuf `AggregatedRecord`, MD5 of
/// the protobuf.
pub fn aggregate<D: AsRef<[u8]>>(records: &[(&str, D)]) -> Vec<u8> {
    use md5::Digest;
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    let mut keys: Vec<&str> = records.iter().map(|r| r.0).collect();
    keys.dedup();
    let mut body = Vec::new();
    for k in &keys {
        bytes(1, k.as_bytes(), &mut body);
    }
    for (k, data) in records {
        let mut rec = vec![1 << 3];
        varint(keys.iter().position(|x| x == k).unwrap() as u64, &mut rec);
        bytes(3, data.as_ref(), &mut rec);
        bytes(3, &rec, &mut body);
    }
    let mut out = vec![0xF3, 0x89, 0x9A, 0xC2];
    out.extend_from_slice(&body);
    out.extend_from_slice(md5::Md5::digest(&body).as_slice());
    out
}
