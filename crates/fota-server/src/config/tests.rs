//! Settings: precedence, validation, and what their `Debug` hides.

use super::*;

#[test]
fn precedence_flag_over_file_over_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CONFIG_FILE_NAME),
        "listen = \"127.0.0.1:9\"\nroot = \"k/root.bin\"\n[poll]\ninterval = \"30s\"\n\
         [retention]\nevents = \"7d\"\n",
    )
    .unwrap();
    let c = Config::resolve(Overrides {
        data: Some(dir.path().to_owned()),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(c.listen, "127.0.0.1:9");
    assert_eq!(c.root, Some(dir.path().join("k/root.bin")));
    assert_eq!(c.poll_interval, Duration::from_secs(30));
    assert_eq!(c.retention.events, Duration::from_secs(7 * DAY));
    let c = Config::resolve(Overrides {
        data: Some(dir.path().to_owned()),
        listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(c.listen, "127.0.0.1:0");
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "lisen = \"x\"").unwrap();
    assert!(matches!(
        Config::resolve(Overrides {
            config: Some(path.clone()),
            ..Overrides::default()
        }),
        Err(ConfigError::Parse { .. })
    ));
    std::fs::write(&path, "[poll]\njitter = 0.9").unwrap();
    assert!(matches!(
        Config::resolve(Overrides {
            config: Some(path),
            ..Overrides::default()
        }),
        Err(ConfigError::Invalid(_))
    ));
}

#[test]
fn a_metrics_token_comes_from_the_file_is_long_enough_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let resolve = || {
        Config::resolve(Overrides {
            data: Some(dir.path().to_owned()),
            config: Some(path.clone()),
            ..Overrides::default()
        })
    };
    std::fs::write(&path, "[metrics]\ntoken = \"scrape-0123456789abcdef\"\n").unwrap();
    let c = resolve().unwrap();
    assert_eq!(
        c.metrics_token.as_ref().map(|t| t.expose()),
        Some("scrape-0123456789abcdef")
    );
    assert!(!format!("{c:?}").contains("0123456789abcdef"));
    let file = FileConfig::load(&path).unwrap();
    assert!(!format!("{file:?}").contains("0123456789abcdef"));
    std::fs::write(&path, "[metrics]\ntoken = \"short\"\n").unwrap();
    assert!(matches!(resolve(), Err(ConfigError::Invalid(m)) if m.contains("metrics.token")));
}

#[test]
fn debug_of_the_settings_hides_a_psk_given_as_a_value() {
    let value = Some(PskSource::Value("fleet-psk-do-not-print".into()));
    let overrides = Overrides {
        legacy_psk: value.clone(),
        ..Overrides::default()
    };
    let mut config = Config::with_data("/srv/fota");
    config.legacy_psk = value;
    for debug in [format!("{overrides:?}"), format!("{config:?}")] {
        assert!(debug.contains("Value([redacted])"), "{debug}");
        assert!(!debug.contains("do-not-print"), "{debug}");
    }
    // A file's path is no secret: it says where to look.
    let file = format!("{:?}", PskSource::File("/etc/fota/psk".into()));
    assert_eq!(file, "File(\"/etc/fota/psk\")");
}

#[test]
fn a_psk_from_the_flag_or_the_environment_beats_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(CONFIG_FILE_NAME),
        "legacy_psk_file = \"psk.txt\"\n",
    )
    .unwrap();
    let with = |legacy_psk| {
        Config::resolve(Overrides {
            data: Some(dir.path().to_owned()),
            legacy_psk,
            ..Overrides::default()
        })
        .unwrap()
        .legacy_psk
    };
    assert_eq!(
        with(None),
        Some(PskSource::File(dir.path().join("psk.txt"))),
        "relative to the config file"
    );
    let value = PskSource::Value("secret".into());
    assert_eq!(with(Some(value.clone())), Some(value));
}

#[test]
fn plain_http_only_on_loopback_unless_insecure() {
    let resolve = |o: Overrides| {
        Config::resolve(Overrides {
            data: Some("/nonexistent".into()),
            ..o
        })
    };
    for listen in ["0.0.0.0:8080", "192.0.2.7:80", "[::]:8080"] {
        let err = resolve(Overrides {
            listen: Some(listen.into()),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::PlainHttpNotLoopback(_)),
            "{listen}: {err}"
        );
        assert!(err.to_string().contains("--insecure-http"), "{err}");
        resolve(Overrides {
            listen: Some(listen.into()),
            insecure_http: true,
            ..Overrides::default()
        })
        .unwrap();
        let c = resolve(Overrides {
            listen: Some(listen.into()),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
    }
    for listen in ["127.0.0.1:0", "[::1]:8080", "127.0.0.2:9"] {
        resolve(Overrides {
            listen: Some(listen.into()),
            ..Overrides::default()
        })
        .unwrap();
    }
}

#[test]
fn tls_keys_from_the_file_and_half_a_pair_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "listen = \"0.0.0.0:8443\"\n[tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n",
    )
    .unwrap();
    let c = Config::resolve(Overrides {
        config: Some(path.clone()),
        ..Overrides::default()
    })
    .unwrap();
    let tls = c.tls.unwrap();
    assert_eq!(tls.cert, dir.path().join("tls/cert.pem"));
    assert_eq!(tls.key, dir.path().join("tls/key.pem"));
    std::fs::write(&path, "[tls]\ncert = \"tls/cert.pem\"\n").unwrap();
    let err = Config::resolve(Overrides {
        config: Some(path),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("both"), "{err}");
}

#[test]
fn legacy_http_listener_needs_the_legacy_api() {
    let err = Config::resolve(Overrides {
        data: Some("/nonexistent".into()),
        legacy_http_listen: Some("0.0.0.0:8080".into()),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("legacy PSK"), "{err}");
    let c = Config::resolve(Overrides {
        data: Some("/nonexistent".into()),
        legacy_http_listen: Some("0.0.0.0:8080".into()),
        legacy_psk: Some(PskSource::Value("k".into())),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(
        c.legacy_http_addr().unwrap(),
        Some("0.0.0.0:8080".parse().unwrap())
    );
}

#[test]
fn per_device_keys_and_the_new_limits_come_from_the_file_or_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let resolve = |flag: bool, psk: bool| {
        Config::resolve(Overrides {
            data: Some(dir.path().to_owned()),
            config: Some(path.clone()),
            legacy_per_device_keys: flag,
            legacy_psk: psk.then(|| PskSource::Value("k".into())),
            ..Overrides::default()
        })
    };
    std::fs::write(&path, "").unwrap();
    let c = resolve(false, true).unwrap();
    assert!(!c.legacy.per_device_keys, "off by default");
    assert_eq!(c.limits.concurrent_uploads, 4);
    assert_eq!(c.legacy.failures_per_minute, 30);
    assert!(resolve(true, true).unwrap().legacy.per_device_keys);
    std::fs::write(
        &path,
        "[legacy]\nper_device_keys = true\nfailures_per_minute = 5\n\
         [limits]\nconcurrent_uploads = 2\n",
    )
    .unwrap();
    let c = resolve(false, true).unwrap();
    assert!(c.legacy.per_device_keys);
    assert_eq!(c.legacy.failures_per_minute, 5);
    assert_eq!(c.limits.concurrent_uploads, 2);
    let err = resolve(false, false).unwrap_err();
    assert!(err.to_string().contains("legacy PSK"), "{err}");
    std::fs::write(&path, "[limits]\nconcurrent_uploads = 0\n").unwrap();
    let err = resolve(false, true).unwrap_err();
    assert!(err.to_string().contains("concurrent_uploads"), "{err}");
}
