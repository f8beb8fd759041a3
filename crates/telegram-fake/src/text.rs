//! Message text as Telegram reads it: the `parse_mode` markup parsed into the text a user sees (which the length
//! limits apply to), with Telegram's "can't parse entities" reasons for markup it would refuse.

/// A `parse_mode` the Bot API knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseMode {
    Html,
    MarkdownV2,
    Markdown,
}

/// HTML tags Telegram supports.
const TAGS: [&str; 16] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

/// Reads a `parse_mode` value; an empty one means none. `Err` for anything else.
pub(crate) fn parse_mode(value: Option<&str>) -> Result<Option<ParseMode>, ()> {
    let Some(value) = value.filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    match value.to_ascii_lowercase().as_str() {
        "html" => Ok(Some(ParseMode::Html)),
        "markdownv2" => Ok(Some(ParseMode::MarkdownV2)),
        "markdown" => Ok(Some(ParseMode::Markdown)),
        _ => Err(()),
    }
}

/// The text a user sees once the markup is applied; `Err` carries Telegram's reason after
/// `can't parse entities: `.
pub(crate) fn visible(text: &str, mode: Option<ParseMode>) -> Result<String, String> {
    match mode {
        None | Some(ParseMode::Markdown) => Ok(text.to_owned()),
        Some(ParseMode::Html) => html(text),
        Some(ParseMode::MarkdownV2) => markdown_v2(text),
    }
}

/// How Telegram counts a text's length (in characters).
pub(crate) fn length(text: &str) -> usize {
    text.chars().count()
}

/// The length of a text in UTF-16 code units, the unit of entity offsets.
pub(crate) fn utf16_length(text: &str) -> usize {
    text.encode_utf16().count()
}

fn html(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut open: Vec<String> = Vec::new();
    let mut index = 0;
    while let Some(rest) = text.get(index..) {
        let Some(character) = rest.chars().next() else {
            break;
        };
        match character {
            '<' => {
                let Some(end) = rest.find('>') else {
                    return Err(format!("Unclosed start tag at byte offset {index}"));
                };
                let tag = rest.get(1..end).unwrap_or_default();
                if let Some(name) = tag.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some(expected) if expected == name => {}
                        Some(expected) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {index}, expected \"</{expected}>\", found \"</{name}>\""
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {index}")),
                    }
                } else {
                    let name = tag
                        .split(char::is_whitespace)
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {index}"
                        ));
                    }
                    if name == "span" && !tag.contains("tg-spoiler") {
                        return Err(format!(
                            "Tag \"span\" must have class \"tg-spoiler\" at byte offset {index}"
                        ));
                    }
                    open.push(name);
                }
                index += end + 1;
            }
            '&' => {
                let (decoded, length) = entity(rest).unwrap_or(('&', 1));
                out.push(decoded);
                index += length;
            }
            _ => {
                out.push(character);
                index += character.len_utf8();
            }
        }
    }
    if let Some(name) = open.pop() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{name}\""
        ));
    }
    Ok(out)
}

/// An HTML entity at the start of `rest` (`&lt;`, `&#33;`, …): the character and the bytes it spans.
fn entity(rest: &str) -> Option<(char, usize)> {
    let end = rest
        .char_indices()
        .take(12)
        .find(|(_, character)| *character == ';')
        .map(|(at, _)| at)?;
    let name = rest.get(1..end)?;
    let decoded = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((decoded, end + 1))
}

fn markdown_v2(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut characters = text.char_indices();
    let mut in_code = false;
    let mut in_url = false;
    let mut previous: Option<char> = None;
    // Unclosed bold/italic/strikethrough markers: (marker, byte offset of the last one).
    let mut markers: Vec<(char, usize)> = Vec::new();
    while let Some((offset, character)) = characters.next() {
        if character == '\\' {
            match characters.next() {
                Some((_, escaped)) => {
                    if !in_url {
                        out.push(escaped);
                    }
                    previous = Some(escaped);
                    continue;
                }
                None => {
                    return Err(format!(
                        "Character '\\' is reserved and must be escaped with the preceding '\\' at byte offset {offset}"
                    ));
                }
            }
        }
        if in_code {
            if character == '`' {
                in_code = false;
            } else {
                out.push(character);
            }
        } else if in_url {
            if character == ')' {
                in_url = false;
            }
        } else {
            match character {
                '`' => in_code = true,
                '(' if previous == Some(']') => in_url = true,
                '>' if previous.is_none_or(|previous| previous == '\n') => {}
                '*' | '_' | '~' => match markers.iter().rposition(|(open, _)| *open == character) {
                    Some(at) => {
                        markers.remove(at);
                    }
                    None => markers.push((character, offset)),
                },
                '[' | ']' | '|' => {}
                '>' | '#' | '+' | '-' | '=' | '{' | '}' | '.' | '!' | '(' | ')' => {
                    return Err(format!(
                        "Character '{character}' is reserved and must be escaped with the preceding '\\'"
                    ));
                }
                _ => out.push(character),
            }
        }
        previous = Some(character);
    }
    if let Some((marker, offset)) = markers.first() {
        let entity = match marker {
            '*' => "Bold",
            '_' => "Italic",
            _ => "Strikethrough",
        };
        return Err(format!(
            "Can't find end of {entity} entity at byte offset {offset}"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_parsed_to_visible_text() {
        let shown = visible(
            "<b>Plan</b> &lt;Pro&gt; &amp; <a href=\"https://x\">more</a>",
            Some(ParseMode::Html),
        );
        assert_eq!(shown, Ok("Plan <Pro> & more".to_owned()));
    }

    #[test]
    fn html_errors_read_like_telegram() {
        assert_eq!(
            visible("1 < 2", Some(ParseMode::Html)),
            Err("Unclosed start tag at byte offset 2".to_owned())
        );
        assert_eq!(
            visible("<p>x</p>", Some(ParseMode::Html)),
            Err("Unsupported start tag \"p\" at byte offset 0".to_owned())
        );
        assert!(visible("<b>x", Some(ParseMode::Html)).is_err());
        assert!(visible("<b>x</i>", Some(ParseMode::Html)).is_err());
    }

    #[test]
    fn markdown_v2_needs_escapes() {
        assert!(visible("Price: 10.5", Some(ParseMode::MarkdownV2)).is_err());
        assert_eq!(
            visible(
                "*Price:* 10\\.5 [link](https://a.b/c.d)",
                Some(ParseMode::MarkdownV2)
            ),
            Ok("Price: 10.5 link".to_owned())
        );
        assert!(visible("*bold", Some(ParseMode::MarkdownV2)).is_err());
    }

    #[test]
    fn parse_modes_are_checked() {
        assert_eq!(parse_mode(Some("HTML")), Ok(Some(ParseMode::Html)));
        assert_eq!(parse_mode(None), Ok(None));
        assert!(parse_mode(Some("BBCode")).is_err());
    }
}
