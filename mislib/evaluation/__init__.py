"""Machinery the studies share: batched trainers, shadow-model audits, Monte-Carlo ground truth, ranking agreement."""
