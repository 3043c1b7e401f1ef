//! The fuzz target's entry point (`gm_limits::untrusted::limits_spec`) on stable: arbitrary text and text
//! shaped like limits specs, a bounded number of cases each.

use gm_limits::untrusted::limits_spec;
use proptest::prelude::*;

fn spec_like() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[0-9]{1,12}/[0-9]{0,6}(\\.[0-9]{0,10})?(ms|s|m|h|d|sec|min|x|)",
        "(concurrency|tokens_in|tokens_out|tpm|tpd)=[0-9]{0,22}",
        "tokens=[0-9]{1,8}/[0-9]{1,4}(s|m|h|d)",
        "margin=[0-9]{0,5}(ms|s|%|\\.[0-9]%)?(\\+[0-9]{1,3}(ms|%))?",
        "(none|off|unlimited| |,|=|/)",
    ];
    prop::collection::vec(part, 0..6).prop_map(|p| p.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_a_limits_spec(data in prop::collection::vec(any::<u8>(), 0..200)) {
        limits_spec(&data);
    }

    #[test]
    fn spec_shaped_text(text in spec_like()) {
        limits_spec(text.as_bytes());
    }
}

#[test]
fn regression_cases() {
    limits_spec(b"1/0.5s");
    limits_spec(b"1/0.0000000001s");
    // Found by spec_shaped_text: a window finer than a millisecond printed rounded, and parsed back different.
    limits_spec(b"3/627.84508ms");
    // Found by spec_shaped_text: a daily token budget over 2^32 printed as `tokens=N/1d`, which refuses it.
    limits_spec(b"tpd=63075314663914434");
    // Found by spec_shaped_text: a window of more than 2^32 ms printed in a form that did not parse back.
    limits_spec(b"7156/47848213824ms");
    // Found by `cargo fuzz run limits_spec`: durations adding up past u64 milliseconds did not print back.
    limits_spec(b"909996m690.04m960917999696996m0.04m964m94m");
    limits_spec(b"4294967295/1d,concurrency=4294967295");
}
