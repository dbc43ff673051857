"""Rebuild the test slice from the shared dataset: python tests/data/make_slice.py SHARED_DIR."""

import sys
from pathlib import Path

import numpy as np

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/wordnet-minilm")
out = Path(__file__).parent
np.save(out / "train.npy", np.load(src / "train.npy")[:5000])
np.save(out / "test_id.npy", np.load(src / "test_id.npy")[:200])
np.save(out / "test_ood.npy", np.load(src / "test_ood.npy")[:200])
np.save(out / "train_queries_ood.npy", np.load(src / "train_queries_ood.npy")[:500])
attrs = np.load(src / "attrs.npz")
np.savez_compressed(out / "attrs.npz", **{k: attrs[k][:5000] for k in attrs.files})
mv = np.load(src / "multivector.npz")
doc_offsets = mv["doc_offsets"][:201]
q_off = mv["query_offsets"]
chosen = list(range(0, 50)) + list(range(300, 350))
q_vecs = [mv["query_vecs"][q_off[i] : q_off[i + 1]] for i in chosen]
q_offsets = np.concatenate([[0], np.cumsum([len(v) for v in q_vecs])]).astype(np.int64)
np.savez_compressed(
    out / "multivector.npz",
    doc_vecs=mv["doc_vecs"][: doc_offsets[-1]],
    doc_offsets=doc_offsets,
    query_vecs=np.concatenate(q_vecs),
    query_offsets=q_offsets,
)
