//! Prepares a running server for `scripts/bench-server.sh`: provisions N devices, signs,
//! uploads and assigns a 1 MiB v2 release (16 KiB chunks) and makes a 1 MiB legacy upload
//! (16 KiB chunks), through the operator client as `fota` does, and writes what the load
//! generator and nginx need into OUT:
//!
//! - `checkins.txt`: one line per device, `TOKEN HEX(FCI1 check-in record)`; each device
//!   reports running the assigned release, so the answer is "nothing to do" (the steady state)
//! - `image.bin`, `blob_path`, `device_token`: the v2 image, its blob URL path, one device token
//! - `chunks/N.json`, `total_chunks`: the legacy chunk answers exactly as the server sends them
//! - `answer.bin`: one check-in answer, as the "small static file" for nginx
//!
//! Usage: `cargo bench -p fota-server --bench bench_setup -- URL ADMIN_TOKEN KEYS_DIR OUT_DIR
//! DEVICES` (the key folder from `fota keys init --no-passphrase`). A setup step, not a
//! measurement: it lives with the benchmarks it serves.
#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    reason = "a host-only tool"
)]

use std::path::Path;

use fota_client::Client;
use fota_client::release::{KeyFolder, ReleaseSpec, sign};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A device-API POST (the operator client speaks only the operator API): the answer's bytes.
fn device_post(url: &str, token: &str, body: &[u8]) -> Res<Vec<u8>> {
    let mut resp = ureq::post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send(body)?;
    Ok(resp.body_mut().read_to_vec()?)
}

fn main() -> Res<()> {
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let [_, url, admin, keys, out, devices] = args.as_slice() else {
        return Err("usage: bench_setup URL ADMIN_TOKEN KEYS_DIR OUT_DIR DEVICES".into());
    };
    let url = url.trim_end_matches('/');
    let out = Path::new(out);
    let n: usize = devices.parse()?;
    std::fs::create_dir_all(out.join("chunks"))?;
    let class = "bench";
    let op = Client::new(url, Some(admin.clone()))?;
    let keys = KeyFolder::open(Path::new(keys), None)?;

    // the v2 release: a 1 MiB image in 16 KiB chunks, signed as `fota release create` does
    let image = fota_testkit::image("9.0.0", 1024 * 1024, false);
    let chunk_size = 16 * 1024;
    let release = sign(
        &image,
        &ReleaseSpec {
            class: class.into(),
            version: "9.0.0".into(),
            sequence: 1,
            security_counter: None,
            chunk_size,
            issued_at: fota_testkit::unix_now(),
            expires_at: 0,
            manifest_format: Default::default(),
        },
        &keys,
    )?;
    let sha = fota_testkit::sha256(&image);

    // devices
    let mut lines = String::new();
    let mut first_token = String::new();
    for i in 0..n {
        let id = format!("bench{i:05}");
        let prov = op.add_device(&id, class)?;
        let record =
            fota_testkit::records::checkin(&keys.vendor_id(), &id, "9.0.0", sha, 1).to_vec()?;
        lines.push_str(&format!("{} {}\n", prov.token, hex::encode(record)));
        if i == 0 {
            first_token = prov.token;
        }
    }
    std::fs::write(out.join("checkins.txt"), lines)?;

    // upload and assign the release
    let upload = op.upload_signed(&release, &image, &mut |_| {})?;
    let rid = upload.release.id;
    op.assign_class(&rid, class)?;
    std::fs::write(out.join("image.bin"), &image)?;
    std::fs::write(
        out.join("blob_path"),
        format!("/api/v2/device/blobs/{}", hex::encode(sha)),
    )?;
    std::fs::write(out.join("device_token"), &first_token)?;

    // every device checks in once, so the measured check-ins are the steady state (the
    // report unchanged, nothing written); the first answer is nginx's small file
    let checkin_url = format!("{url}/api/v2/device/checkin");
    let all = std::fs::read_to_string(out.join("checkins.txt"))?;
    for (i, line) in all.lines().enumerate() {
        let (token, hexbody) = line.split_once(' ').ok_or("line")?;
        let answer = device_post(&checkin_url, token, &hex::decode(hexbody)?)?;
        if i == 0 {
            std::fs::write(out.join("answer.bin"), answer)?;
        }
    }

    // legacy: the same image in 16 KiB chunks, and the chunk answers for nginx
    let up = op.legacy_upload("9.0.0", &image, u64::from(chunk_size), &mut |_| {})?;
    let total = up.total_chunks;
    for c in 0..total {
        let mut resp =
            ureq::get(&format!("{url}/api/inverter/fota/chunk?chunk_number={c}")).call()?;
        std::fs::write(
            out.join("chunks").join(format!("{c}.json")),
            resp.body_mut().read_to_vec()?,
        )?;
    }
    std::fs::write(out.join("total_chunks"), total.to_string())?;
    println!(
        "prepared {n} devices, release {rid}, {total} legacy chunks in {}",
        out.display()
    );
    Ok(())
}
