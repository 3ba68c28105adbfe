//! The Arrow schema of a shard row, and conversion between [`Instance`]s and record batches.

use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use arrow::array::{
    ArrayRef, AsArray, ListArray, PrimitiveArray, RecordBatch, UInt8Array, UInt16Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Schema, SchemaRef, UInt8Type, UInt16Type, UInt32Type,
};

use crate::shards::Instance;

/// Width of token ids: u16 while the vocabulary fits (every bundled one does), else u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenIdType {
    Uint16,
    Uint32,
}

impl TokenIdType {
    pub fn for_vocab_size(size: usize) -> Self {
        if size <= 1 << 16 {
            Self::Uint16
        } else {
            Self::Uint32
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Uint16 => DataType::UInt16,
            Self::Uint32 => DataType::UInt32,
        }
    }
}

fn list_of(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", item, false))),
        false,
    )
}

/// `input_ids: list<u16|u32>`, `segment_ids: list<u8>`, `masked_lm_positions: list<u16>`,
/// `masked_lm_ids: list<u16|u32>`, `next_sentence_label: u8`, `valid_length: u16`.
pub fn shard_schema(ids: TokenIdType) -> SchemaRef {
    Arc::new(Schema::new(vec![
        list_of("input_ids", ids.data_type()),
        list_of("segment_ids", DataType::UInt8),
        list_of("masked_lm_positions", DataType::UInt16),
        list_of("masked_lm_ids", ids.data_type()),
        Field::new("next_sentence_label", DataType::UInt8, false),
        Field::new("valid_length", DataType::UInt16, false),
    ]))
}

/// Packs instances into one record batch.
pub fn to_record_batch(instances: &[Instance], ids: TokenIdType) -> Result<RecordBatch> {
    let id_list = |get: fn(&Instance) -> &[u32]| -> ArrayRef {
        match ids {
            TokenIdType::Uint16 => list_array::<UInt16Type, _>(instances, get, |&v| v as u16),
            TokenIdType::Uint32 => list_array::<UInt32Type, _>(instances, get, |&v| v),
        }
    };
    let columns: Vec<ArrayRef> = vec![
        id_list(|i| &i.input_ids),
        list_array::<UInt8Type, _>(instances, |i| &i.segment_ids, |&v| v),
        list_array::<UInt16Type, _>(instances, |i| &i.masked_lm_positions, |&v| v),
        id_list(|i| &i.masked_lm_ids),
        Arc::new(UInt8Array::from_iter_values(
            instances.iter().map(|i| i.next_sentence_label),
        )),
        Arc::new(UInt16Array::from_iter_values(
            instances.iter().map(|i| i.valid_length() as u16),
        )),
    ];
    Ok(RecordBatch::try_new(shard_schema(ids), columns)?)
}

fn list_array<T: ArrowPrimitiveType, V>(
    instances: &[Instance],
    get: fn(&Instance) -> &[V],
    convert: impl Fn(&V) -> T::Native,
) -> ArrayRef {
    let lengths = instances.iter().map(|i| get(i).len());
    let offsets = OffsetBuffer::<i32>::from_lengths(lengths);
    let values: PrimitiveArray<T> = PrimitiveArray::from_iter_values(
        instances.iter().flat_map(|i| get(i).iter().map(&convert)),
    );
    let field = Arc::new(Field::new("item", T::DATA_TYPE, false));
    Arc::new(ListArray::new(field, offsets, Arc::new(values), None))
}

/// Unpacks a record batch, checking every column against the schema and each row for
/// internal consistency, so a damaged or foreign file is a clear error.
pub fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Instance>> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .with_context(|| format!("shard has no `{name}` column"))
    };
    let input_ids = u32_lists(column("input_ids")?, "input_ids")?;
    let masked_lm_ids = u32_lists(column("masked_lm_ids")?, "masked_lm_ids")?;
    let segment_ids = typed_lists::<UInt8Type>(column("segment_ids")?, "segment_ids")?;
    let positions =
        typed_lists::<UInt16Type>(column("masked_lm_positions")?, "masked_lm_positions")?;
    let labels = column("next_sentence_label")?
        .as_primitive_opt::<UInt8Type>()
        .context("`next_sentence_label` is not uint8")?;
    let lengths = column("valid_length")?
        .as_primitive_opt::<UInt16Type>()
        .context("`valid_length` is not uint16")?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let inst = Instance {
            input_ids: input_ids[row].clone(),
            segment_ids: segment_ids[row].clone(),
            masked_lm_positions: positions[row].clone(),
            masked_lm_ids: masked_lm_ids[row].clone(),
            next_sentence_label: labels.value(row),
        };
        let n = inst.input_ids.len();
        ensure!(
            n == lengths.value(row) as usize && inst.segment_ids.len() == n,
            "row {row}: valid_length {} disagrees with input_ids ({n}) or segment_ids ({})",
            lengths.value(row),
            inst.segment_ids.len()
        );
        ensure!(
            inst.masked_lm_positions.len() == inst.masked_lm_ids.len()
                && inst.masked_lm_positions.iter().all(|&p| (p as usize) < n),
            "row {row}: masked_lm_positions and masked_lm_ids disagree"
        );
        out.push(inst);
    }
    Ok(out)
}

fn typed_lists<T: ArrowPrimitiveType>(array: &ArrayRef, name: &str) -> Result<Vec<Vec<T::Native>>> {
    let list = array
        .as_list_opt::<i32>()
        .with_context(|| format!("`{name}` is not a list column"))?;
    let Some(values) = list.values().as_primitive_opt::<T>() else {
        bail!(
            "`{name}` holds {} values, expected {}",
            list.value_type(),
            T::DATA_TYPE
        );
    };
    // Checked slicing: offsets of a foreign file must not be trusted to be in range.
    list.value_offsets()
        .windows(2)
        .enumerate()
        .map(|(row, w)| {
            usize::try_from(w[0])
                .ok()
                .zip(usize::try_from(w[1]).ok())
                .and_then(|(a, b)| values.values().get(a..b))
                .map(<[T::Native]>::to_vec)
                .with_context(|| {
                    format!(
                        "`{name}` row {row}: offsets {}..{} out of range",
                        w[0], w[1]
                    )
                })
        })
        .collect()
}

fn u32_lists(array: &ArrayRef, name: &str) -> Result<Vec<Vec<u32>>> {
    let list = array
        .as_list_opt::<i32>()
        .with_context(|| format!("`{name}` is not a list column"))?;
    match list.value_type() {
        DataType::UInt16 => Ok(typed_lists::<UInt16Type>(array, name)?
            .into_iter()
            .map(|v| v.into_iter().map(u32::from).collect())
            .collect()),
        DataType::UInt32 => typed_lists::<UInt32Type>(array, name),
        other => bail!("`{name}` holds {other} values, expected uint16 or uint32"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Instance> {
        vec![
            Instance {
                input_ids: vec![101, 7, 102, 70000, 102],
                segment_ids: vec![0, 0, 0, 1, 1],
                masked_lm_positions: vec![3],
                masked_lm_ids: vec![9],
                next_sentence_label: 1,
            },
            Instance {
                input_ids: vec![101, 1, 2, 102, 3, 102],
                segment_ids: vec![0, 0, 0, 0, 1, 1],
                masked_lm_positions: vec![1, 4],
                masked_lm_ids: vec![5, 6],
                next_sentence_label: 0,
            },
        ]
    }

    #[test]
    fn round_trips_with_both_id_widths() {
        let wide = sample();
        let batch = to_record_batch(&wide, TokenIdType::Uint32).unwrap();
        assert_eq!(from_record_batch(&batch).unwrap(), wide);
        let mut narrow = sample();
        narrow[0].input_ids[3] = 4;
        let batch = to_record_batch(&narrow, TokenIdType::Uint16).unwrap();
        assert_eq!(
            batch.schema().field(0).data_type().to_string(),
            "List(non-null UInt16)"
        );
        assert_eq!(from_record_batch(&batch).unwrap(), narrow);
    }

    #[test]
    fn id_width_follows_vocab_size() {
        assert_eq!(TokenIdType::for_vocab_size(30522), TokenIdType::Uint16);
        assert_eq!(TokenIdType::for_vocab_size(119547), TokenIdType::Uint32);
    }
}
