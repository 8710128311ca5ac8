"""The export table, the pseudo file system, client rules, squashing and the security
policy (which flavors may reach which export).  See docs/exports.md."""

from securenfs.exports.secpolicy import SecInfo, SecPolicy
from securenfs.exports.squash import apply_squash
from securenfs.exports.table import (
    PSEUDO_FSID,
    ROOT_NODE_ID,
    Access,
    Export,
    ExportError,
    ExportTable,
    PseudoNode,
)

__all__ = ["PSEUDO_FSID", "ROOT_NODE_ID", "Access", "Export", "ExportError", "ExportTable",
           "PseudoNode", "SecInfo", "SecPolicy", "apply_squash"]
