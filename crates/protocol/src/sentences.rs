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
    format!("El servidor ha recibido satisfactoriamente su mensaje '{message}'.")
}

const SERVER_PREFIX: &str = "El servidor ha recibido satisfactoriamente su mensaje '";

/// The message inside a [`server_received`] sentence.
pub fn parse_server_received(sentence: &str) -> Option<&str> {
    sentence.strip_prefix(SERVER_PREFIX)?.strip_suffix("'.")
}

/// A datanode's answer to `STORE`:
/// `El <name> ha registrado satisfactoriamente el mensaje: '<message>'.`
pub fn datanode_stored(name: &str, message: &str) -> String {
    format!("El {name} ha registrado satisfactoriamente el mensaje: '{message}'.")
}

/// The `(name, message)` inside a [`datanode_stored`] sentence.
pub fn parse_datanode_stored(sentence: &str) -> Option<(&str, &str)> {
    let rest = sentence.strip_prefix("El ")?;
    let (name, rest) = rest.split_once(" ha registrado satisfactoriamente el mensaje: '")?;
    Some((name, rest.strip_suffix("'.")?))
}

/// The headnode's answer to `SEND`:
/// `Su mensaje '<message>' ha sido registrado en el <name>.`
pub fn headnode_stored(message: &str, name: &str) -> String {
    format!("Su mensaje '{message}' ha sido registrado en el {name}.")
}

/// The `(message, name)` inside a [`headnode_stored`] sentence.
pub fn parse_headnode_stored(sentence: &str) -> Option<(&str, &str)> {
    let rest = sentence.strip_prefix("Su mensaje '")?.strip_suffix('.')?;
    rest.rsplit_once("' ha sido registrado en el ")
}

/// A heartbeat line for a datanode that answered: `El <name> aun está activo.`
pub fn heartbeat_active(name: &str) -> String {
    format!("El {name} aun está activo.")
}

/// A heartbeat line for a datanode that did not: `El <name> se encuentra inactivo.`
pub fn heartbeat_inactive(name: &str) -> String {
    format!("El {name} se encuentra inactivo.")
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
