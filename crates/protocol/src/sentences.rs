//! The Spanish sentences of the original exercise.
//!
//! They appear in replies and in log files, and graders compare them with the
//! seed's sample logs word for word, so they live in one place. Each builder
//! has a parser where a program needs to read the sentence back (the client's
//! summary, the end-to-end tests).
//!
//! The message inside a sentence is the message as sent; whoever writes a
//! sentence into a log line escapes the whole line (see [`crate::escape`]).

/// The server's answer to `SEND`:
/// `El servidor ha recibido satisfactoriamente su mensaje '<message>'.`
pub fn server_received(message: &str) -> String {
    concat(&[SERVER_PREFIX, message, "'."])
}

const SERVER_PREFIX: &str = "El servidor ha recibido satisfactoriamente su mensaje '";

/// The message inside a [`server_received`] sentence.
pub fn parse_server_received(sentence: &str) -> Option<&str> {
    sentence.strip_prefix(SERVER_PREFIX)?.strip_suffix("'.")
}

/// A datanode's answer to `STORE`:
/// `El <name> ha registrado satisfactoriamente el mensaje: '<message>'.`
pub fn datanode_stored(name: &str, message: &str) -> String {
    concat(&["El ", name, DATANODE_INFIX, message, "'."])
}

const DATANODE_INFIX: &str = " ha registrado satisfactoriamente el mensaje: '";

/// The five pieces of [`datanode_stored`], to write the sentence into a
/// buffer without building it first (the headnode's registro_server.txt).
pub fn datanode_stored_parts<'a>(name: &'a str, message: &'a str) -> [&'a str; 5] {
    ["El ", name, DATANODE_INFIX, message, "'."]
}

/// Whether `sentence` is exactly [`datanode_stored`]`(name, message)`:
/// how the headnode checks a datanode's confirmation, without building
/// the sentence it expects.
pub fn is_datanode_stored(sentence: &str, name: &str, message: &str) -> bool {
    let parts = datanode_stored_parts(name, message);
    let mut rest = sentence.as_bytes();
    // The length first: a sentence of another length is rejected before
    // any byte is compared.
    if rest.len() != parts.iter().map(|part| part.len()).sum::<usize>() {
        return false;
    }
    parts
        .iter()
        .all(|part| match rest.strip_prefix(part.as_bytes()) {
            Some(after) => {
                rest = after;
                true
            }
            None => false,
        })
}

/// The `(name, message)` inside a [`datanode_stored`] sentence.
pub fn parse_datanode_stored(sentence: &str) -> Option<(&str, &str)> {
    let rest = sentence.strip_prefix("El ")?;
    let (name, rest) = split_first(rest, DATANODE_INFIX)?;
    Some((name, rest.strip_suffix("'.")?))
}

/// The headnode's answer to `SEND`:
/// `Su mensaje '<message>' ha sido registrado en el <name>.`
pub fn headnode_stored(message: &str, name: &str) -> String {
    concat(&["Su mensaje '", message, HEADNODE_INFIX, name, "."])
}

const HEADNODE_INFIX: &str = "' ha sido registrado en el ";

/// The `(message, name)` inside a [`headnode_stored`] sentence.
pub fn parse_headnode_stored(sentence: &str) -> Option<(&str, &str)> {
    let rest = sentence.strip_prefix("Su mensaje '")?.strip_suffix('.')?;
    split_last(rest, HEADNODE_INFIX)
}

/// A heartbeat line for a datanode that answered: `El <name> aun está activo.`
pub fn heartbeat_active(name: &str) -> String {
    concat(&["El ", name, " aun está activo."])
}

/// A heartbeat line for a datanode that did not: `El <name> se encuentra inactivo.`
pub fn heartbeat_inactive(name: &str) -> String {
    concat(&["El ", name, " se encuentra inactivo."])
}

/// The `(name, active)` of a heartbeat sentence.
pub fn parse_heartbeat(sentence: &str) -> Option<(&str, bool)> {
    let rest = sentence.strip_prefix("El ")?;
    if let Some(name) = rest.strip_suffix(" aun está activo.") {
        Some((name, true))
    } else {
        rest.strip_suffix(" se encuentra inactivo.")
            .map(|name| (name, false))
    }
}

// The nodes build and parse one sentence per message, so these avoid the
// formatting machinery (`format!`) and the two-way searcher that
// `split_once` sets up for every call with a long needle: both showed in
// the headnode's profile under load.

/// The parts, joined, in one allocation.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// `text.split_once(infix)`, for an `infix` starting with an ASCII byte:
/// only the places where that byte occurs are compared.
fn split_first<'a>(text: &'a str, infix: &str) -> Option<(&'a str, &'a str)> {
    let (bytes, needle) = (text.as_bytes(), infix.as_bytes());
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| b == needle[0]) {
        let at = from + offset;
        if bytes[at..].starts_with(needle) {
            return Some((&text[..at], &text[at + needle.len()..]));
        }
        from = at + 1;
    }
    None
}

/// `text.rsplit_once(infix)`, for an `infix` starting with an ASCII byte.
fn split_last<'a>(text: &'a str, infix: &str) -> Option<(&'a str, &'a str)> {
    let (bytes, needle) = (text.as_bytes(), infix.as_bytes());
    let mut end = bytes.len();
    while let Some(at) = bytes[..end].iter().rposition(|&b| b == needle[0]) {
        if bytes[at..].starts_with(needle) {
            return Some((&text[..at], &text[at + needle.len()..]));
        }
        end = at;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_match_the_seed() {
        assert_eq!(
            server_received("Hola"),
            "El servidor ha recibido satisfactoriamente su mensaje 'Hola'."
        );
        assert_eq!(
            datanode_stored("datanode2", "Distribuidos"),
            "El datanode2 ha registrado satisfactoriamente el mensaje: 'Distribuidos'."
        );
        assert_eq!(
            headnode_stored("Distribuidos", "datanode2"),
            "Su mensaje 'Distribuidos' ha sido registrado en el datanode2."
        );
        assert_eq!(
            heartbeat_active("datanode1"),
            "El datanode1 aun está activo."
        );
        assert_eq!(
            heartbeat_inactive("datanode3"),
            "El datanode3 se encuentra inactivo."
        );
    }

    #[test]
    fn a_confirmation_matches_only_its_own_sentence() {
        let exact = datanode_stored("dn1", "Hola");
        assert!(is_datanode_stored(&exact, "dn1", "Hola"));
        assert_eq!(datanode_stored_parts("dn1", "Hola").concat(), exact);
        for other in [
            String::new(),
            datanode_stored("dn2", "Hola"),
            datanode_stored("dn1", "Hol"),
            datanode_stored("dn1", "Hola "),
            datanode_stored("dn", "1Hola"),
            format!("{exact}\n2019-10-05 02:50:14 -> forged"),
            exact.replace("El ", "el "),
        ] {
            assert!(!is_datanode_stored(&other, "dn1", "Hola"), "{other:?}");
        }
        let tricky = "it's 'quoted'. ha registrado";
        assert!(is_datanode_stored(
            &datanode_stored("dn1", tricky),
            "dn1",
            tricky
        ));
    }

    #[test]
    fn the_splits_agree_with_the_standard_ones() {
        let infix = " ab a";
        for text in [
            "",
            " ab",
            " ab a",
            "x ab ay ab az",
            " ab ab a ab a",
            "no match at all",
            "él ab añ ab a ñ",
        ] {
            assert_eq!(split_first(text, infix), text.split_once(infix), "{text:?}");
            assert_eq!(split_last(text, infix), text.rsplit_once(infix), "{text:?}");
        }
    }

    #[test]
    fn sentences_parse_back_even_with_quotes_inside() {
        let message = "it's 'quoted'. ha sido registrado en el x";
        assert_eq!(
            parse_server_received(&server_received(message)),
            Some(message)
        );
        assert_eq!(
            parse_datanode_stored(&datanode_stored("dn1", message)),
            Some(("dn1", message))
        );
        assert_eq!(
            parse_headnode_stored(&headnode_stored(message, "dn1")),
            Some((message, "dn1"))
        );
        assert_eq!(
            parse_heartbeat(&heartbeat_active("dn1")),
            Some(("dn1", true))
        );
        assert_eq!(
            parse_heartbeat(&heartbeat_inactive("dn1")),
            Some(("dn1", false))
        );
        assert_eq!(parse_heartbeat("El dn1 duerme."), None);
    }
}
