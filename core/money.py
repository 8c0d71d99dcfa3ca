"""Money is integer fen everywhere; yuan appear only on display."""


def format_fen(amount_fen: int | None) -> str:
    """``format_fen(1230) == "¥12.30"``, ``format_fen(130000) == "¥1,300.00"``."""
    if amount_fen is None:
        return ""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(int(amount_fen)), 100)
    return f"{sign}¥{yuan:,}.{fen:02d}"
