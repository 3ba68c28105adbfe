//! `bert-embed`'s output formats: JSON Lines, NumPy `.npy`, Arrow IPC.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Result, bail};
use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, ListArray, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use bert_model::SentenceEmbedding;

/// One JSON object per line:
/// `{"text", "tokens", "sentence_embedding", "token_embeddings"?}`.
pub fn write_jsonl(
    out: &mut impl Write,
    rows: &[SentenceEmbedding],
    with_tokens: bool,
) -> Result<()> {
    for row in rows {
        let mut object = serde_json::json!({
            "text": row.text,
            "tokens": row.tokens,
            "sentence_embedding": row.sentence_embedding,
        });
        if with_tokens {
            object["token_embeddings"] = serde_json::json!(row.token_embeddings);
        }
        serde_json::to_writer(&mut *out, &object)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The sentence vectors as one `float32` matrix `[sentences, hidden]` in NumPy's `.npy` v1.0.
pub fn npy_bytes(rows: &[SentenceEmbedding]) -> Result<Vec<u8>> {
    let Some(first) = rows.first() else {
        bail!("no sentences to write");
    };
    let h = first.sentence_embedding.len();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {h}), }}",
        rows.len()
    );
    // Magic (6) + version (2) + header length (2) + header, padded with spaces and a newline
    // to a multiple of 64 bytes, as the format asks.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + rows.len() * h * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for row in rows {
        for v in &row.sentence_embedding {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(bytes)
}

fn vectors(values: Vec<f32>, h: usize) -> Result<FixedSizeListArray> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    Ok(FixedSizeListArray::try_new(
        item,
        h as i32,
        Arc::new(Float32Array::from(values)),
        None,
    )?)
}

/// An Arrow IPC file with one row per sentence: `text`, `tokens` (list of strings),
/// `sentence_embedding` (fixed-size list of float32) and, if asked, `token_embeddings`
/// (list of fixed-size lists).
pub fn arrow_bytes(rows: &[SentenceEmbedding], with_tokens: bool) -> Result<Vec<u8>> {
    let Some(first) = rows.first() else {
        bail!("no sentences to write");
    };
    let h = first.sentence_embedding.len();
    let text = StringArray::from_iter_values(rows.iter().map(|r| r.text.as_str()));
    let token_strings = StringArray::from_iter_values(rows.iter().flat_map(|r| r.tokens.iter()));
    let tokens = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Utf8, false)),
        OffsetBuffer::from_lengths(rows.iter().map(|r| r.tokens.len())),
        Arc::new(token_strings),
        None,
    )?;
    let sentence = vectors(
        rows.iter()
            .flat_map(|r| r.sentence_embedding.iter().copied())
            .collect(),
        h,
    )?;

    let mut fields = vec![
        Field::new("text", DataType::Utf8, false),
        Field::new("tokens", tokens.data_type().clone(), false),
        Field::new("sentence_embedding", sentence.data_type().clone(), false),
    ];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(text), Arc::new(tokens), Arc::new(sentence)];
    if with_tokens {
        let flat = vectors(
            rows.iter()
                .flat_map(|r| r.token_embeddings.iter().flatten().copied())
                .collect(),
            h,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new("item", flat.data_type().clone(), false)),
            OffsetBuffer::from_lengths(rows.iter().map(|r| r.token_embeddings.len())),
            Arc::new(flat),
            None,
        )?;
        fields.push(Field::new(
            "token_embeddings",
            list.data_type().clone(),
            false,
        ));
        columns.push(Arc::new(list));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let mut bytes = Vec::new();
    {
        let mut writer = arrow::ipc::writer::FileWriter::try_new(&mut bytes, &schema)?;
        writer.write(&batch)?;
        writer.finish()?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<SentenceEmbedding> {
        (0..3)
            .map(|i| SentenceEmbedding {
                text: format!("s{i}"),
                tokens: vec!["[CLS]".into(), format!("t{i}"), "[SEP]".into()],
                token_embeddings: vec![vec![i as f32; 4]; 3],
                sentence_embedding: vec![i as f32, 1.0, 2.0, 3.0],
                truncated: false,
            })
            .collect()
    }

    #[test]
    fn npy_header_is_aligned_and_data_follows() {
        let bytes = npy_bytes(&rows()).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (3, 4)"), "{header}");
        assert_eq!(bytes.len(), 10 + header_len + 3 * 4 * 4);
        let last = f32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
        assert_eq!(last, 3.0);
    }

    #[test]
    fn arrow_file_reads_back() {
        let bytes = arrow_bytes(&rows(), true).unwrap();
        let reader =
            arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches[0].num_rows(), 3);
        assert_eq!(batches[0].num_columns(), 4);
        let without = arrow_bytes(&rows(), false).unwrap();
        let reader =
            arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(without), None).unwrap();
        assert_eq!(reader.schema().fields().len(), 3);
    }

    #[test]
    fn jsonl_has_one_object_per_sentence() {
        let mut out = Vec::new();
        write_jsonl(&mut out, &rows(), false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["tokens"][1], "t1");
        assert!(lines[1].get("token_embeddings").is_none());
    }
}
