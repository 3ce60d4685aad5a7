//! Spectral repair's measurement against the numpy reference of
//! `tools/spectral_repair/make_fixture.py` (tests/fixtures/spectral_repair.json): the
//! loss-space cells that see each region, exactly, and the masked loss, to 1e-4.

use candle_core::{Device, Tensor};
use dgg_restore::dsp::mel::{LossMel, LossMelConfig};
use dgg_restore::restore::measurement::Measurement;
use serde::Deserialize;

#[derive(Deserialize)]
struct Region {
    samples: (usize, usize),
    band: (f64, f64),
}

#[derive(Deserialize)]
struct Fixture {
    sample_rate: u32,
    x: Vec<f32>,
    y: Vec<f32>,
    regions: Vec<Region>,
    cells: Vec<u8>,
    loss: f64,
}

#[test]
fn the_cells_and_the_masked_loss_match_the_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/spectral_repair.json");
    let f: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let regions: Vec<_> = f.regions.iter().map(|r| (r.samples.0..r.samples.1, r.band)).collect();
    let mel = LossMel::new(LossMelConfig { sample_rate: f.sample_rate, ..LossMelConfig::paper(None) }, &Device::Cpu).unwrap();
    let cells = mel.cells_outside(f.x.len(), &regions);
    let expected: Vec<f32> = f.cells.iter().map(|&c| c as f32).collect();
    assert_eq!(cells.len(), expected.len());
    let wrong: Vec<usize> = (0..cells.len()).filter(|&i| cells[i] != expected[i]).collect();
    assert!(wrong.is_empty(), "{} cells differ, first {:?} (frame, mel)", wrong.len(), wrong.first().map(|i| (i / 64, i % 64)));
    assert!(expected.contains(&0.0) && expected.contains(&1.0));

    let tensor = |v: &[f32]| Tensor::from_slice(v, (1, v.len()), &Device::Cpu).unwrap();
    let measurement = Measurement::outside_regions(&tensor(&f.y), &regions, f.sample_rate).unwrap();
    let loss = measurement.loss(&tensor(&f.x)).unwrap().to_scalar::<f32>().unwrap() as f64;
    assert!((loss / f.loss - 1.0).abs() < 1e-4, "loss {loss}, reference {}", f.loss);
}
