/// Every file in the migrations folder must be embedded, in order, with the version its
/// name carries: a new file that is not listed in `migrator()` would silently never run.
#[test]
fn every_migration_file_is_embedded() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    let migrator = super::migrator();
    assert_eq!(files.len(), migrator.migrations.len(), "{files:?}");
    for (file, m) in files.iter().zip(migrator.migrations.iter()) {
        let (version, rest) = file.split_once('_').unwrap();
        assert_eq!(version.parse::<i64>().unwrap(), m.version, "{file}");
        let description = rest.trim_end_matches(".sql").replace('_', " ");
        assert_eq!(description, m.description, "{file}");
        let sql = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        assert_eq!(sql, m.sql.as_str(), "{file}");
    }
}
