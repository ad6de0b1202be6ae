//! A WAL record body (`WalOp::decode`, over the shared `Reader`). Asserts that whatever
//! decodes encodes to a body that decodes to the same operation (vectors bit for bit), and
//! that this encoding is canonical (encoding it again gives the same bytes).
#![no_main]

use akidb_fuzz::same_wal_op;
use akidb_storage::wal::WalOp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(op) = WalOp::decode(data) else {
        return;
    };
    let body = op.encode();
    let back = WalOp::decode(&body).expect("an encoded record decodes");
    assert!(same_wal_op(&op, &back), "decode(encode(op)) != op");
    assert_eq!(back.encode(), body, "the encoding is not canonical");
});
