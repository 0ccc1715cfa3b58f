"""The sandbox's candidate report as a one-page PDF (what `pdfReportUrl` / `ReportPDFUrl` point at)."""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from bot.sandbox.state import Invitation, format_points, score_line

INK = colors.HexColor("#23267a")
SECTION_GRID = TableStyle(
    [
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("TEXTCOLOR", (0, 0), (-1, 0), INK),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#d0d4e0")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
    ]
)


def render_report_pdf(invitation: Invitation) -> bytes:
    """Candidate, test, score ("42 / 50 points (84%)"), performance category and a per-section table."""
    inv = invitation
    styles = getSampleStyleSheet()
    title = styles["Title"].clone("ReportTitle", textColor=INK, alignment=0)
    normal = styles["Normal"]
    score_style = styles["Heading2"].clone("Score", textColor=INK)

    buffer = io.BytesIO()
    _document(buffer, inv).build(
        [
            Paragraph("Candidate test report", title),
            Paragraph(escape(f"{inv.test_name} · iMocha sandbox"), normal),
            Spacer(1, 6 * mm),
            Paragraph(escape(score_line(inv.points, inv.total_points)), score_style),
            Spacer(1, 2 * mm),
            _facts_table(inv, normal),
            Spacer(1, 8 * mm),
            Paragraph("Sections", styles["Heading3"]),
            _sections_table(inv, normal),
        ]
    )
    return buffer.getvalue()


def _document(buffer: io.BytesIO, inv: Invitation) -> SimpleDocTemplate:
    """An A4 page with the report's margins and metadata."""
    return SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"iMocha report {inv.id}",
        author="iMocha sandbox",
    )


def _facts(inv: Invitation) -> list[tuple[str, str]]:
    """The label / value rows under the score: who, which test, which attempt, when, how long, how well."""
    attempted = inv.attempted_at.strftime("%Y-%m-%d %H:%M UTC") if inv.attempted_at else "—"
    return [
        ("Candidate", f"{inv.name} <{inv.email}>"),
        ("Test", inv.test_name),
        ("Test invitation", str(inv.id) + (f" (attempt {inv.attempt})" if inv.attempt > 1 else "")),
        ("Status", inv.status),
        ("Attempted on", attempted),
        ("Time taken", f"{inv.time_taken // 60} min {inv.time_taken % 60} s"),
        ("Performance category", inv.category or "—"),
    ]


def _facts_table(inv: Invitation, normal: ParagraphStyle) -> Table:
    return Table(
        [[label, Paragraph(escape(value), normal)] for label, value in _facts(inv)],
        colWidths=[45 * mm, 120 * mm],
        style=[("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"), ("VALIGN", (0, 0), (-1, -1), "TOP")],
    )


def _sections_table(inv: Invitation, normal: ParagraphStyle) -> Table:
    """One row per section: its score, its points, its questions and its time."""
    rows: list[list[Any]] = [["Section", "Score", "Out of", "Questions", "Time (min)"]]
    rows += [
        [
            Paragraph(escape(section.name), normal),
            format_points(section.score),
            format_points(section.points),
            str(section.questions),
            str(section.duration),
        ]
        for section in inv.sections
    ]
    return Table(rows, colWidths=[75 * mm, 22 * mm, 22 * mm, 23 * mm, 23 * mm], style=SECTION_GRID)
