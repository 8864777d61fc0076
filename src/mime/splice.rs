//! Writing patches back into the message (STYLE convention 7: MIME is spliced, not
//! re-serialised): every byte outside the patched ranges is copied as it was, and a message
//! with nothing to patch is returned borrowed.

use std::borrow::Cow;
use std::ops::Range;

use super::search::find;
use super::transfer::Patch;
use super::MimeError;

/// The patches for one part's body; patch ranges are relative to `body.start`.
pub(super) struct PartPatches {
    pub(super) body: Range<usize>,
    pub(super) patches: Vec<Patch>,
}

/// `message` with every part's patches applied. Refuses (rather than panics on) ranges out of
/// order or outside the message, and output in which a patch forms a multipart delimiter
/// (`delimiters`, each `--boundary`) together with its neighbours in the same body.
pub(super) fn splice<'a>(
    message: &'a [u8],
    parts: &[PartPatches],
    delimiters: &[Vec<u8>],
) -> Result<Cow<'a, [u8]>, MimeError> {
    if parts.iter().all(|p| p.patches.is_empty()) {
        return Ok(Cow::Borrowed(message));
    }
    let grown: usize = parts
        .iter()
        .flat_map(|p| &p.patches)
        .map(|p| p.bytes.len())
        .sum();
    let mut out = Vec::with_capacity(message.len() + grown);
    let mut pos = 0;
    for part in parts.iter().filter(|p| !p.patches.is_empty()) {
        let body = &part.body;
        if body.start < pos || body.start > body.end || body.end > message.len() {
            return Err(bad_offsets(body, message));
        }
        let body_start = out.len() + (body.start - pos);
        let mut written = Vec::with_capacity(part.patches.len());
        for patch in &part.patches {
            let range = body.start + patch.range.start..body.start + patch.range.end;
            if range.start < pos || range.start > range.end || range.end > body.end {
                return Err(bad_offsets(&range, message));
            }
            out.extend_from_slice(&message[pos..range.start]);
            written.push(out.len()..out.len() + patch.bytes.len());
            out.extend_from_slice(&patch.bytes);
            pos = range.end;
        }
        out.extend_from_slice(&message[pos..body.end]);
        pos = body.end;
        check_delimiters(&out[body_start..], body_start, &written, delimiters)?;
    }
    out.extend_from_slice(&message[pos..]);
    Ok(Cow::Owned(out))
}

fn bad_offsets(range: &Range<usize>, message: &[u8]) -> MimeError {
    MimeError::BadOffsets {
        start: range.start,
        end: range.end,
        len: message.len(),
    }
}

/// Fails when a delimiter occurs in `body` overlapping one of the `written` ranges (offsets
/// in the output; `body` starts at `body_start`). Delimiters wholly in unchanged bytes were
/// there before and are mail-parser's business, not ours.
fn check_delimiters(
    body: &[u8],
    body_start: usize,
    written: &[Range<usize>],
    delimiters: &[Vec<u8>],
) -> Result<(), MimeError> {
    let reach = delimiters.iter().map(Vec::len).max().unwrap_or(0);
    if reach == 0 {
        return Ok(());
    }
    for range in written {
        let from = (range.start - body_start).saturating_sub(reach - 1);
        let to = (range.end - body_start + reach - 1).min(body.len());
        let window = &body[from..to];
        if let Some(delimiter) = delimiters.iter().find(|d| find(window, d).is_some()) {
            return Err(MimeError::BoundaryInText {
                boundary: String::from_utf8_lossy(&delimiter[2..]).into_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(range: Range<usize>, bytes: &str) -> Patch {
        Patch {
            range,
            bytes: bytes.as_bytes().to_vec(),
        }
    }

    #[test]
    fn nothing_to_patch_borrows() {
        let msg = b"H: v\r\n\r\nbody";
        let parts = [PartPatches {
            body: 8..12,
            patches: vec![],
        }];
        assert!(matches!(splice(msg, &parts, &[]), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn patches_land_inside_their_bodies() {
        let msg = b"H\r\n\r\n--b\r\n\r\none X two\r\n--b\r\n\r\nY\r\n--b--\r\n";
        let parts = [
            PartPatches {
                body: 12..21,
                patches: vec![patch(4..5, "link")],
            },
            PartPatches {
                body: 30..31,
                patches: vec![patch(0..1, "other"), patch(1..1, "!")],
            },
        ];
        let out = splice(msg, &parts, &[b"--b".to_vec()]).expect("spliced");
        assert_eq!(
            &out[..],
            b"H\r\n\r\n--b\r\n\r\none link two\r\n--b\r\n\r\nother!\r\n--b--\r\n"
        );
    }

    #[test]
    fn a_patch_that_forms_a_delimiter_is_refused() {
        let msg = b"x\r\n\r\n-- b--\r\n";
        let parts = [PartPatches {
            body: 5..10,
            patches: vec![patch(2..3, "")],
        }];
        assert_eq!(
            splice(msg, &parts, &[b"--b".to_vec()]).err(),
            Some(MimeError::BoundaryInText {
                boundary: "b".into()
            })
        );
    }

    #[test]
    fn out_of_order_ranges_are_refused() {
        let msg = b"abcdef";
        let parts = [PartPatches {
            body: 0..6,
            patches: vec![patch(3..4, "x"), patch(1..2, "y")],
        }];
        assert!(matches!(
            splice(msg, &parts, &[]),
            Err(MimeError::BadOffsets { .. })
        ));
    }
}
