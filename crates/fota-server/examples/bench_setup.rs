//! Prepares a running server for `bench/server.sh`: provisions N devices, uploads and assigns a
//! signed 1 MiB v2 release (16 KiB chunks) and a 1 MiB legacy upload (16 KiB chunks), and
//! writes what the load generator and nginx need into OUT:
//!
//! - `checkins.txt`: one line per device, `TOKEN HEX(FCI1 check-in record)`; each device
//!   reports running the assigned release, so the answer is "nothing to do" (the steady state)
//! - `image.bin`, `blob_path`, `device_token`: the v2 image, its blob URL path, one device token
//! - `chunks/N.json`: the legacy chunk answers exactly as the server sends them
//! - `answer.bin`: one check-in answer, as the "small static file" for nginx
//!
//! Usage: `bench_setup URL ADMIN_TOKEN KEYS_DIR OUT_DIR DEVICES`
//! (the key folder from `fota keys init --no-passphrase`).
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;

use base64::Engine as _;
use fota_protocol::esp::build::{AppImageSpec, build_app_image};
use fota_protocol::v2::{self, FixedStr, ManifestBody, RootRecord};
use sha2::Digest as _;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn http(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Res<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(host)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response head")?;
    let status = String::from_utf8_lossy(&raw[..split])
        .split(' ')
        .nth(1)
        .ok_or("no status")?
        .parse()?;
    Ok((status, raw[split + 4..].to_vec()))
}

fn ok(r: (u16, Vec<u8>), what: &str) -> Res<Vec<u8>> {
    if (200..300).contains(&r.0) {
        Ok(r.1)
    } else {
        Err(format!("{what}: {} {}", r.0, String::from_utf8_lossy(&r.1)).into())
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, admin, keys, out, devices] = args.as_slice() else {
        return Err("usage: bench_setup URL ADMIN_TOKEN KEYS_DIR OUT_DIR DEVICES".into());
    };
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let keys = Path::new(keys);
    let out = Path::new(out);
    let n: usize = devices.parse()?;
    std::fs::create_dir_all(out.join("chunks"))?;
    let auth = format!("Bearer {admin}");
    let class = "bench";

    let root = RootRecord::verify_initial(&std::fs::read(keys.join("root.bin"))?)?;
    let vendor = uuid::Uuid::from_bytes(*root.vendor_id());
    let release_key = fota_keys::read_signing_key(&keys.join("release.key"), None)?;

    // the v2 release: a 1 MiB image in 16 KiB chunks
    let image = build_app_image(&AppImageSpec {
        size: 1024 * 1024,
        ..AppImageSpec::new("9.0.0")
    })?;
    let image = &image[..];
    let chunk_size = 16 * 1024;
    let hl = v2::hashlist::build(image, chunk_size)?;
    let sha: [u8; 32] = sha2::Sha256::digest(image).into();
    let body = ManifestBody {
        vendor_id: *vendor.as_bytes(),
        class_id: *fota_protocol::v2::ids::class_id(&vendor, class).as_bytes(),
        device_id: [0; 16],
        sequence: 1,
        security_counter: 0,
        payload_format: v2::PayloadFormat::RawEspApp,
        component: v2::Component::Application,
        fw_version: FixedStr::new("9.0.0").ok_or("version")?,
        project_name: FixedStr::new("ecowatt").ok_or("project")?,
        issued_at: 0,
        expires_at: 0,
        image_size: image.len() as u64,
        chunk_size,
        chunk_count: hl.layout.chunk_count(),
        image_sha256: sha,
        chunk_list_sha256: hl.chunk_list_sha256,
        precursor_sha256: [0; 32],
    };
    let manifest = body.sign(&[&release_key])?;

    // devices
    let mut lines = String::new();
    let mut first_token = String::new();
    for i in 0..n {
        let id = format!("bench{i:05}");
        let req = serde_json::json!({ "id": id, "class": class }).to_string();
        let prov: serde_json::Value = serde_json::from_slice(&ok(
            http(
                host,
                "POST",
                "/api/v2/devices",
                &[("Authorization", &auth)],
                req.as_bytes(),
            )?,
            "provision",
        )?)?;
        let token = prov["token"].as_str().ok_or("token")?.to_owned();
        let record = v2::CheckIn {
            legacy_latched_off: true,
            device_id: *fota_protocol::v2::ids::device_uuid(&vendor, &id).as_bytes(),
            nonce: uuid::Uuid::new_v4().into_bytes(),
            root_version: 1,
            installed_sequence: 1,
            installed_security_counter: 0,
            running_fw_version: FixedStr::new("9.0.0").ok_or("version")?,
            running_image_sha256: sha,
            running_slot: 0,
            running_ota_state: 2,
            agent_state: v2::AgentState::Idle,
            last_result: v2::ReasonCode::None,
            pending_bytes_done: 0,
            pending_bytes_total: 0,
            pending_manifest_digest: [0; 32],
            rollback_order_id: 0,
            boot_count: 0,
        }
        .encode()?;
        lines.push_str(&format!("{token} {}\n", hex::encode(record)));
        if i == 0 {
            first_token = token;
        }
    }
    std::fs::write(out.join("checkins.txt"), lines)?;

    // upload and assign the release
    let boundary = "bench-boundary-1f0c";
    let mut mp = Vec::new();
    for (name, data) in [
        ("manifest", &manifest[..]),
        ("hashlist", &hl.blob[..]),
        ("image", image),
    ] {
        mp.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        mp.extend_from_slice(data);
        mp.extend_from_slice(b"\r\n");
    }
    mp.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let rel: serde_json::Value = serde_json::from_slice(&ok(
        http(
            host,
            "POST",
            "/api/v2/releases",
            &[("Authorization", &auth), ("Content-Type", &ct)],
            &mp,
        )?,
        "upload",
    )?)?;
    let rid = rel["id"].as_str().ok_or("release id")?;
    let assign = serde_json::json!({ "class": class }).to_string();
    ok(
        http(
            host,
            "POST",
            &format!("/api/v2/releases/{rid}/assign"),
            &[("Authorization", &auth)],
            assign.as_bytes(),
        )?,
        "assign",
    )?;
    std::fs::write(out.join("image.bin"), image)?;
    std::fs::write(
        out.join("blob_path"),
        format!("/api/v2/device/blobs/{}", hex::encode(sha)),
    )?;
    std::fs::write(out.join("device_token"), &first_token)?;

    // every device checks in once, so the measured check-ins are the steady state (the
    // report unchanged, nothing written); the first answer is nginx's small file
    let all = std::fs::read_to_string(out.join("checkins.txt"))?;
    for (i, line) in all.lines().enumerate() {
        let (token, hexbody) = line.split_once(' ').ok_or("line")?;
        let auth = format!("Bearer {token}");
        let answer = ok(
            http(
                host,
                "POST",
                "/api/v2/device/checkin",
                &[("Authorization", &auth)],
                &hex::decode(hexbody)?,
            )?,
            "checkin",
        )?;
        if i == 0 {
            std::fs::write(out.join("answer.bin"), answer)?;
        }
    }

    // legacy: the same image size in 16 KiB chunks, and the chunk answers for nginx
    let upload = serde_json::json!({
        "version": "9.0.0",
        "size": image.len(),
        "hash": hex::encode(sha),
        "chunk_size": chunk_size,
        "firmware_data": base64::engine::general_purpose::STANDARD.encode(image),
    })
    .to_string();
    let up: serde_json::Value = serde_json::from_slice(&ok(
        http(
            host,
            "POST",
            "/api/cloud/fota/upload",
            &[("Authorization", &auth)],
            upload.as_bytes(),
        )?,
        "legacy upload",
    )?)?;
    let total = up["total_chunks"].as_u64().ok_or("total_chunks")?;
    for c in 0..total {
        let body = ok(
            http(
                host,
                "GET",
                &format!("/api/inverter/fota/chunk?chunk_number={c}"),
                &[],
                b"",
            )?,
            "chunk",
        )?;
        std::fs::write(out.join("chunks").join(format!("{c}.json")), body)?;
    }
    std::fs::write(out.join("total_chunks"), total.to_string())?;
    println!(
        "prepared {n} devices, release {rid}, {total} legacy chunks in {}",
        out.display()
    );
    Ok(())
}
