"""SnapStart templates in namespace sandboxes: the host ids their user namespaces map onto."""

from __future__ import annotations

from lambdalite.sandbox import namespace, namespace_template


def test_template_blocks_are_aligned_distinct_and_apart_from_sandbox_uids() -> None:
    blocks = [namespace_template._allocate_block() for _ in range(200)]
    try:
        assert len(set(blocks)) == len(blocks)
        for base in blocks:
            assert base % namespace_template.BLOCK == 0
            # The whole block, every id a copy may take, lies below the per-sandbox uids.
            assert namespace_template._BLOCK_RANGE[0] <= base
            assert base + namespace_template.BLOCK <= namespace._UID_RANGE[0]
    finally:
        for base in blocks:
            namespace_template._blocks.discard(base)
