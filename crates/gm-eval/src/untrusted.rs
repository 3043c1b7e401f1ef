//! Entry points that take arbitrary bytes where gm-eval reads untrusted input (prompt files, the state file's
//! stored rows), for the fuzz targets (`fuzz/`) and the property tests that run the same functions on stable.
//! Each returns normally for any input and panics only when an invariant breaks.

use crate::prompt::PromptFile;

/// A prompt file's text: no panic, and a file that parses renders each row's messages.
pub fn prompt_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = PromptFile::parse(&text, "fuzz.prompt.yml") {
        for row in file.test_data.iter().take(8) {
            let _ = file.render_messages(row);
        }
    }
}

/// A stored test case (the `result` and `figures` columns of `run_cases`, split at the first NUL byte): no
/// panic, whatever a damaged or hand-edited state file holds.
pub fn stored_case(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (result, figures) = text.split_once('\0').unwrap_or((&text, ""));
    let _ = crate::run::decode_case(result, figures);
}
