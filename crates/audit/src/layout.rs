//! Which files to read: the log files found at the paths given.
//!
//! Files are known by name, as every way of running the project names them
//! (README, "The log files"): `log.txt` and `respuestas.txt` are Activity 1,
//! `registro_cliente.txt`, `registro_server.txt`, `heartbeat_server.txt`
//! (or the statement's spelling `hearbeat_server.txt`) and `data.txt` are
//! Activity 2. A `data.txt` belongs to the datanode its folder is named
//! after, as in compose (`activity2/datanode1/data.txt`), the launcher and
//! the seed (`datanode0/data.txt`). A folder is searched three levels deep,
//! so `logs`, `logs/activity2` and `logs/activity2/headnode` all work;
//! hidden folders are skipped.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::Error;

/// The files of Activity 1 that were found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Activity1Files {
    /// The server's `log.txt`.
    pub log: Option<PathBuf>,
    /// The client's `respuestas.txt`.
    pub respuestas: Option<PathBuf>,
}

/// The files of Activity 2 that were found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Activity2Files {
    /// The client's `registro_cliente.txt`.
    pub registro_cliente: Option<PathBuf>,
    /// The headnode's `registro_server.txt`.
    pub registro_server: Option<PathBuf>,
    /// The headnode's `heartbeat_server.txt`.
    pub heartbeat: Option<PathBuf>,
    /// Each datanode's `data.txt`, by the name of its folder.
    pub data: BTreeMap<String, PathBuf>,
}

/// Every log file found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Activity 1's files.
    pub activity1: Activity1Files,
    /// Activity 2's files.
    pub activity2: Activity2Files,
}

impl Activity1Files {
    /// Whether any file was found.
    pub fn any(&self) -> bool {
        self.log.is_some() || self.respuestas.is_some()
    }
}

impl Activity2Files {
    /// Whether any file was found.
    pub fn any(&self) -> bool {
        self.registro_cliente.is_some()
            || self.registro_server.is_some()
            || self.heartbeat.is_some()
            || !self.data.is_empty()
    }
}

/// How deep a folder is searched: `logs/activity2/headnode/x.txt` is three
/// levels below `logs`.
const DEPTH: usize = 3;

impl Layout {
    /// The files at `paths`, or with none, under the compose layout's
    /// `<logs>/activity1` and `<logs>/activity2` (those that hold files).
    pub fn find(paths: &[PathBuf], logs: &Path) -> Result<Layout, Error> {
        let mut layout = Layout::default();
        if paths.is_empty() {
            for activity in ["activity1", "activity2"] {
                let folder = logs.join(activity);
                if folder.is_dir() {
                    layout.search(&folder, DEPTH)?;
                }
            }
            if !layout.activity1.any() && !layout.activity2.any() {
                return Err(Error::NoLogs {
                    path: logs.to_owned(),
                });
            }
            return Ok(layout);
        }
        for path in paths {
            let before = layout.clone();
            if path.is_dir() {
                layout.search(path, DEPTH)?;
                if layout == before {
                    return Err(Error::NoLogs { path: path.clone() });
                }
            } else if path.is_file() {
                if !layout.add(path)? {
                    return Err(Error::UnknownFile { path: path.clone() });
                }
            } else {
                return Err(Error::NotFound { path: path.clone() });
            }
        }
        Ok(layout)
    }

    fn search(&mut self, folder: &Path, depth: usize) -> Result<(), Error> {
        let read_error = |source| Error::Read {
            path: folder.to_owned(),
            source,
        };
        // Sorted, so that a duplicate is reported the same way every time.
        let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(read_error)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()
            .map_err(read_error)?;
        entries.sort();
        for path in entries {
            let hidden = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with('.'));
            if path.is_dir() {
                if depth > 0 && !hidden {
                    self.search(&path, depth - 1)?;
                }
            } else if path.is_file() {
                self.add(&path)?;
            }
        }
        Ok(())
    }

    /// Takes `path` by its name; `false` if it is no log file.
    fn add(&mut self, path: &Path) -> Result<bool, Error> {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            return Ok(false);
        };
        let (slot, kind) = match name {
            "log.txt" => (&mut self.activity1.log, name.to_owned()),
            "respuestas.txt" => (&mut self.activity1.respuestas, name.to_owned()),
            "registro_cliente.txt" => (&mut self.activity2.registro_cliente, name.to_owned()),
            "registro_server.txt" => (&mut self.activity2.registro_server, name.to_owned()),
            "heartbeat_server.txt" | "hearbeat_server.txt" => {
                (&mut self.activity2.heartbeat, name.to_owned())
            }
            "data.txt" => {
                let datanode = datanode_of(path);
                let first = self.activity2.data.entry(datanode.clone());
                return match first {
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(path.to_owned());
                        Ok(true)
                    }
                    std::collections::btree_map::Entry::Occupied(slot) if slot.get() == path => {
                        Ok(true)
                    }
                    std::collections::btree_map::Entry::Occupied(slot) => Err(Error::Duplicate {
                        kind: format!("data.txt of {datanode}"),
                        first: slot.get().clone(),
                        second: path.to_owned(),
                    }),
                };
            }
            _ => return Ok(false),
        };
        match slot {
            Some(first) if first != path => Err(Error::Duplicate {
                kind,
                first: first.clone(),
                second: path.to_owned(),
            }),
            _ => {
                *slot = Some(path.to_owned());
                Ok(true)
            }
        }
    }
}

/// The datanode a `data.txt` belongs to: its folder's name.
fn datanode_of(path: &Path) -> String {
    let folder = match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => None,
        parent => parent,
    };
    let folder = folder.map_or_else(
        || std::env::current_dir().unwrap_or_default(),
        Path::to_owned,
    );
    let folder = std::fs::canonicalize(&folder).unwrap_or(folder);
    folder.file_name().map_or_else(
        || "datanode".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, relative: &str) -> PathBuf {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "").unwrap();
        path
    }

    #[test]
    fn finds_the_compose_layout_with_no_path() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path();
        let log = touch(logs, "activity1/server/log.txt");
        let respuestas = touch(logs, "activity1/client/respuestas.txt");
        let cliente = touch(logs, "activity2/client/registro_cliente.txt");
        let server = touch(logs, "activity2/headnode/registro_server.txt");
        let heartbeat = touch(logs, "activity2/headnode/heartbeat_server.txt");
        let data: Vec<PathBuf> = (1..=3)
            .map(|n| touch(logs, &format!("activity2/datanode{n}/data.txt")))
            .collect();
        touch(logs, "activity2/headnode/stderr.txt");
        touch(logs, "activity2/.hidden/data.txt");

        let layout = Layout::find(&[], logs).unwrap();
        assert_eq!(layout.activity1.log, Some(log));
        assert_eq!(layout.activity1.respuestas, Some(respuestas));
        assert_eq!(layout.activity2.registro_cliente, Some(cliente));
        assert_eq!(layout.activity2.registro_server, Some(server));
        assert_eq!(layout.activity2.heartbeat, Some(heartbeat));
        let names: Vec<&str> = layout.activity2.data.keys().map(String::as_str).collect();
        assert_eq!(names, ["datanode1", "datanode2", "datanode3"]);
        assert_eq!(layout.activity2.data["datanode2"], data[1]);
        // The same files, found from the folder of one activity.
        let one = Layout::find(&[logs.join("activity2")], Path::new("unused")).unwrap();
        assert_eq!(one.activity2, layout.activity2);
        assert!(!one.activity1.any());
    }

    #[test]
    fn takes_files_by_name_and_data_by_folder() {
        let root = tempfile::tempdir().unwrap();
        let data = touch(root.path(), "dn7/data.txt");
        let spelled = touch(root.path(), "h/hearbeat_server.txt");
        let layout = Layout::find(&[data.clone(), spelled.clone()], Path::new("logs")).unwrap();
        assert_eq!(layout.activity2.data["dn7"], data);
        assert_eq!(layout.activity2.heartbeat, Some(spelled));
    }

    #[test]
    fn usage_errors() {
        let root = tempfile::tempdir().unwrap();
        let other = touch(root.path(), "notes.txt");
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let missing = root.path().join("missing");
        assert!(matches!(
            Layout::find(&[other], Path::new("x")),
            Err(Error::UnknownFile { .. })
        ));
        assert!(matches!(
            Layout::find(std::slice::from_ref(&empty), Path::new("x")),
            Err(Error::NoLogs { .. })
        ));
        assert!(matches!(
            Layout::find(&[missing], Path::new("x")),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            Layout::find(&[], &empty),
            Err(Error::NoLogs { .. })
        ));
        touch(root.path(), "a/headnode/registro_server.txt");
        touch(root.path(), "b/headnode/registro_server.txt");
        let err = Layout::find(&[root.path().to_owned()], Path::new("x")).unwrap_err();
        assert!(matches!(err, Error::Duplicate { .. }), "{err}");
        assert_eq!(err.fault(), journal::Fault::Caller);
    }
}
