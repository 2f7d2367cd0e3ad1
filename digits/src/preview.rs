//! A contact sheet of model inputs: rows of 28x28 images, enlarged, dark ink on white, so a
//! person can see what a model learns from (`pismo data augment --preview`).

use crate::image::OwnedGrey;
use pismo_core::mlp::INPUT;
use pismo_core::preprocess::SIDE;

/// Pixels between cells.
const GAP: usize = 2;

/// `rows` of inputs (MNIST bytes, ink bright), each cell enlarged `scale` times (nearest),
/// as a grey image with dark ink on white and grey gutters. Rows may differ in length.
pub fn sheet(rows: &[Vec<[u8; INPUT]>], scale: usize) -> OwnedGrey {
    let scale = scale.max(1);
    let cell = SIDE * scale;
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let width = cols * (cell + GAP) + GAP;
    let height = rows.len().max(1) * (cell + GAP) + GAP;
    let mut data = vec![200u8; width * height];
    for (r, row) in rows.iter().enumerate() {
        for (c, image) in row.iter().enumerate() {
            let (x0, y0) = (GAP + c * (cell + GAP), GAP + r * (cell + GAP));
            for y in 0..cell {
                for x in 0..cell {
                    let v = image[(y / scale) * SIDE + x / scale];
                    data[(y0 + y) * width + x0 + x] = 255 - v;
                }
            }
        }
    }
    OwnedGrey {
        width,
        height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_land_in_their_row_and_column() {
        let mut ink = [0u8; INPUT];
        ink[0] = 255;
        let sheet = sheet(&[vec![[0; INPUT], ink]], 2);
        assert_eq!((sheet.width, sheet.height), (2 * 58 + 2, 58 + 2));
        // The second cell's top-left pixel is ink (black); the first cell is white.
        assert_eq!(sheet.data[GAP * sheet.width + GAP + 58], 0);
        assert_eq!(sheet.data[GAP * sheet.width + GAP], 255);
    }
}
