//! Sidecar addresses as users write them (RUNCORE_ADDRESS, the sidecar's
//! --listen and --port-file).

use crate::status::Status;

/// Where a sidecar listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A unix socket path (absolute, or relative to the working directory).
    Unix(String),
    /// `host:port`.
    Tcp(String),
}

/// Parses "unix:///abs/path", "unix:path", "tcp://host:port" or "host:port".
pub(crate) fn parse(address: &str) -> Result<Target, Status> {
    let malformed = |why: &str| {
        Status::invalid_argument(format!(
            "malformed sidecar address {address:?}: {why}; write unix:///absolute/path, \
             unix:relative/path, tcp://host:port or host:port"
        ))
    };
    if let Some(rest) = address.strip_prefix("unix:") {
        let path = match rest.strip_prefix("//") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => return Err(malformed("a unix:// path must be absolute")),
            None => rest,
        };
        if path.is_empty() {
            return Err(malformed("no socket path"));
        }
        return Ok(Target::Unix(path.to_owned()));
    }
    let host_port = address.strip_prefix("tcp://").unwrap_or(address);
    if host_port.contains("://") {
        return Err(malformed("unknown scheme"));
    }
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| malformed("no port"))?;
    if host.is_empty() || host.contains('/') {
        return Err(malformed("no host"));
    }
    if port.parse::<u16>().is_err() {
        return Err(malformed("the port is not a number from 0 to 65535"));
    }
    Ok(Target::Tcp(host_port.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_four_forms() {
        assert_eq!(
            parse("unix:///tmp/r.sock"),
            Ok(Target::Unix("/tmp/r.sock".into()))
        );
        assert_eq!(parse("unix:r.sock"), Ok(Target::Unix("r.sock".into())));
        assert_eq!(
            parse("unix:/tmp/r.sock"),
            Ok(Target::Unix("/tmp/r.sock".into()))
        );
        assert_eq!(
            parse("tcp://127.0.0.1:7070"),
            Ok(Target::Tcp("127.0.0.1:7070".into()))
        );
        assert_eq!(
            parse("localhost:7070"),
            Ok(Target::Tcp("localhost:7070".into()))
        );
        assert_eq!(parse("[::1]:7070"), Ok(Target::Tcp("[::1]:7070".into())));
    }

    #[test]
    fn refuses_malformed_addresses_with_invalid_argument() {
        for bad in [
            "",
            "unix:",
            "unix://",
            "unix://rel/path",
            "localhost",
            "tcp://:80",
            "h:port",
            "http://h:1",
            "h:70000",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.code, tonic::Code::InvalidArgument, "{bad}");
            assert!(
                err.message.contains("unix:///absolute/path"),
                "{}",
                err.message
            );
        }
    }
}
