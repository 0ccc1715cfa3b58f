"""The tables claims are taken on, and the statements a claim keeper runs on them.

Owns `ClaimTable` (which columns hold a row's holder and expiry, and which rows are still to do) and
the two statements of the claims thread (bot/runtime/claims.py): renewing a holder's claims on its
rows, and finding the holders whose claims lapsed. Neither keeps any state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, sessionmaker

IN_CHUNK = 500  # row ids per UPDATE ... WHERE id IN (...)


@dataclass(frozen=True)
class ClaimTable:
    """A table of claimable work: its holder and expiry columns, and what "still to do" means."""

    name: str
    model: Any
    holder: Any  # the column holding the holder id
    expiry: Any  # the column holding the claim's expiry
    pending: ColumnElement[bool]  # rows still to do


def renew_claims(session_factory: sessionmaker[Session], table: ClaimTable, ids: list[int], *, holder: str, expiry: datetime) -> set[int]:
    """Move the expiry of `holder`'s claims on the rows `ids` to `expiry`, in one transaction; returns the
    rows renewed (those still the holder's and still to do)."""
    renewed: set[int] = set()
    with session_factory.begin() as session:
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            renewed.update(
                session.scalars(
                    update(table.model)
                    .where(table.model.id.in_(chunk), table.holder == holder, table.pending)
                    .values({table.expiry: expiry})
                    .returning(table.model.id)
                    .execution_options(synchronize_session=False)
                )
            )
    return renewed


def lapsed_holders(session: Session, table: ClaimTable, now: datetime, *, limit: int = 5) -> list[str]:
    """Up to `limit` holders with a claim on a row still to do that expired before `now`."""
    return list(
        session.scalars(select(table.holder).where(table.pending, table.holder.is_not(None), table.expiry < now).distinct().limit(limit))
    )


__all__ = ["IN_CHUNK", "ClaimTable", "lapsed_holders", "renew_claims"]
