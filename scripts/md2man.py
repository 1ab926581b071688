#!/usr/bin/env python3
"""Writes a man page (roff, man(7) macros) from sections of the project's
Markdown docs, so that the packaged manuals say what the docs say (packaging/README.md).

The Markdown subset the docs use: ATX headings, paragraphs, fenced code blocks, "- " lists with
indented continuation lines, pipe tables, and inline `code`, **bold**, *emphasis*, [links](url).

  md2man.py --name activate --section 8 --summary "..." --out activate.8 \
      --part README.md#Usage --part README.md#'Exit codes=EXIT STATUS'

A part is FILE (the whole file, its first "# " heading dropped) or FILE#HEADING (that section,
up to the next heading of the same or a higher level), optionally =TITLE to rename it.
"""
import argparse
import re
import sys


def escape(text):
    """Text for roff: backslashes escaped, and a leading dot or quote not read as a request."""
    text = text.replace("\\", "\\e")
    return text


def inline(text):
    """Markdown inline markup to roff font changes; everything else literal."""
    out = []
    # `code` first: nothing inside it is markup.
    for i, piece in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:
            out.append("\\fB" + escape(piece[1:-1]).replace("-", "\\-") + "\\fR")
            continue
        piece = escape(piece)
        piece = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", piece)
        piece = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", piece)
        piece = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\\fI\1\\fR", piece)
        out.append(piece)
    return "".join(out)


def line_start_safe(line):
    return "\\&" + line if line.startswith((".", "'")) else line


def section_of(lines, heading):
    """The lines of the section titled `heading` (without its heading line)."""
    for i, line in enumerate(lines):
        m = re.match(r"(#+)\s+(.*)", line)
        if m and m.group(2).strip() == heading:
            level = len(m.group(1))
            body = []
            in_code = False
            for rest in lines[i + 1:]:
                if rest.startswith("```"):
                    in_code = not in_code
                n = re.match(r"(#+)\s", rest)
                if n and not in_code and len(n.group(1)) <= level:
                    break
                body.append(rest)
            return level, body
    sys.exit(f"md2man: no section '{heading}'")


def table_row(line):
    """The cells of a pipe-table row; "\\|" is a literal bar inside a cell."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def render(lines, base_level, out):
    """Appends roff for Markdown `lines` whose headings are below `base_level`."""
    i = 0
    paragraph = []

    def flush():
        if paragraph:
            out.append(".PP")
            out.append(line_start_safe(inline(" ".join(paragraph))))
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            out.extend([".PP", ".RS 4", ".nf"])
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                out.append(line_start_safe(escape(lines[i])))
                i += 1
            out.extend([".fi", ".RE"])
            i += 1
            continue
        m = re.match(r"(#+)\s+(.*)", line)
        if m:
            flush()
            title = m.group(2).strip()
            macro = ".SH" if len(m.group(1)) <= base_level + 1 else ".SS"
            text = inline(title)
            out.append(f'{macro} "{text.upper() if macro == ".SH" else text}"')
            i += 1
            continue
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"\|[-| :]+\|?$", lines[i + 1]):
            flush()
            header = table_row(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(table_row(lines[i]))
                i += 1
            # A tagged paragraph per row, not a tbl(1) table: man pages are read 80 columns
            # wide, where the docs' wide tables cannot be set without overfull lines. The first
            # cell is the tag; the others follow, named by their headers, the last as text.
            for row in rows:
                row = (row + [""] * len(header))[: len(header)]
                out.extend([".TP", line_start_safe(inline(row[0]))])
                named = [f"{inline(h)}: {inline(c)}" for h, c in zip(header[1:-1], row[1:-1]) if c]
                text = "; ".join(named)
                if len(header) > 1 and row[-1]:
                    text = (text + ". " if text else "") + inline(row[-1])
                out.append(line_start_safe(text))
            continue
        if re.match(r"\s*[-*] ", line):
            flush()
            indent = len(line) - len(line.lstrip())
            item = [line.strip()[2:]]
            i += 1
            while i < len(lines) and lines[i].strip() and lines[i].startswith(" " * (indent + 2)) \
                    and not re.match(r"\s*[-*] ", lines[i]):
                item.append(lines[i].strip())
                i += 1
            out.append(".IP \\(bu 2" if indent == 0 else ".IP \\(en 4")
            out.append(line_start_safe(inline(" ".join(item))))
            continue
        if not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
        i += 1
    flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--section", required=True)
    ap.add_argument("--summary", required=True, help="the NAME line after the dash")
    ap.add_argument("--date", default="", help="the page's date (default: none)")
    ap.add_argument("--version", default="")
    ap.add_argument("--see-also", default="")
    ap.add_argument("--part", action="append", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    out = [f'.TH "{args.name.upper()}" "{args.section}" "{args.date}" '
           f'"activate {args.version}" "activate"',
           ".SH NAME", f"{args.name} \\- {escape(args.summary)}"]
    for part in args.part:
        spec, _, title = part.partition("=")
        path, _, heading = spec.partition("#")
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        if heading:
            level, body = section_of(lines, heading)
            out.append(f'.SH "{(title or heading).upper()}"')
            render(body, level, out)
        else:
            # The whole document: its title is the page's NAME line already.
            if lines and lines[0].startswith("# "):
                lines = lines[1:]
            if title:
                out.append(f'.SH "{title.upper()}"')
            render(lines, 1, out)
    if args.see_also:
        out.extend([".SH \"SEE ALSO\"", escape(args.see_also)])
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
