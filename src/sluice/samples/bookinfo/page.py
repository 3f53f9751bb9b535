"""HTML for productpage: the book page (`/productpage`) and the landing page (`/`).

The visible structure follows the original template — title `Simple Bookstore App`, a sign-in dialog
posting `username`/`passwd` to `login`, the book's title and description, a details table or "Error
fetching product details", each review with filled and outline stars in the rating's colour (or the rating
error), "Reviews served by: <pod>" — but the markup and styles are Sluice's own, inline, and the page loads
nothing from anywhere. Stars carry stable class names (`star-full`, `star-empty`, plus the historical
`glyphicon-star`/`glyphicon-star-empty`) so scripts can count them.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

__all__ = ["render_product_page", "render_index", "star_color_css"]

_STAR_POINTS = "12,2.5 14.5,9.1 21.5,9.4 16,13.8 17.9,20.6 12,16.7 6.1,20.6 8,13.8 2.5,9.4 9.5,9.1"
_FULL_STAR = (f'<svg class="star star-full glyphicon glyphicon-star" viewBox="0 0 24 24" aria-hidden="true">'
              f'<polygon points="{_STAR_POINTS}" fill="currentColor"/></svg>')
_EMPTY_STAR = (f'<svg class="star star-empty glyphicon glyphicon-star-empty" viewBox="0 0 24 24" aria-hidden="true">'
               f'<polygon points="{_STAR_POINTS}" fill="none" stroke="currentColor" stroke-width="1.5" '
               f'stroke-linejoin="round"/></svg>')
_NAMED = {"black": "#1f2328", "red": "#e5484d"}
_CSS_WORD = re.compile(r"^[a-zA-Z]{1,20}$")

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#fff;line-height:1.5}
.bar{background:#24292f;color:#fff;display:flex;align-items:center;justify-content:space-between;padding:0 24px;height:56px}
.bar .brand{font-weight:600;font-size:1.1rem;color:#fff;text-decoration:none}
.bar .user{display:flex;gap:12px;align-items:center}
.bar .user a{color:#c9d1d9;font-size:.85rem}
.btn{background:#2f6fde;color:#fff;border:0;border-radius:6px;padding:8px 14px;font-weight:600;cursor:pointer}
.btn:hover{background:#255fc4}
main{max-width:960px;margin:0 auto;padding:24px}
h1{font-size:2.4rem;margin:16px 0;color:#12355b}
.description{font-size:1.15rem;color:#4b5563}
.section{margin-top:32px}
.section h2{font-size:1.6rem;margin:0 0 12px}
table.details{border-collapse:collapse;min-width:60%}
table.details th,table.details td{text-align:left;padding:8px 12px;border-bottom:1px solid #d0d7de;white-space:nowrap}
table.details th{font-size:.85rem;color:#57606a}
.error-title{color:#d1242f;font-size:1.3rem;margin:0}
.error-text{color:#57606a}
.reviews{background:#f3f6fc;padding:24px;border-radius:8px}
.review-list{display:flex;flex-wrap:wrap;gap:24px}
.review{flex:1 1 300px;background:#fff;border-radius:8px;padding:20px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.stars{display:flex;gap:3px}
.star{width:20px;height:20px}
.rating-error{color:#d1242f}
.review blockquote{margin:12px 0;font-size:1.15rem;font-weight:600}
.reviewer{font-weight:600}
.served-by{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem;color:#57606a}
dialog{border:1px solid #d0d7de;border-radius:8px;padding:24px;width:min(360px,90vw)}
dialog label{display:block;font-size:.9rem;margin-top:12px}
dialog input{width:100%;padding:6px 8px;border:1px solid #d0d7de;border-radius:6px}
dialog .actions{display:flex;gap:8px;margin-top:16px;justify-content:flex-end}
.btn.secondary{background:#eaeef2;color:#1f2328}
table.services{border-collapse:collapse;width:100%}
table.services th,table.services td{border:1px solid #d0d7de;padding:6px 10px;text-align:left;vertical-align:top}
table.services th{background:#2f6fde;color:#fff}
"""

_DIALOG_SCRIPT = """
document.addEventListener("DOMContentLoaded", function () {
  var dialog = document.getElementById("sign-in-dialog");
  var open = document.getElementById("sign-in-button");
  var close = document.getElementById("close-dialog");
  if (open && dialog) { open.addEventListener("click", function () { dialog.showModal(); }); }
  if (close && dialog) { close.addEventListener("click", function () { dialog.close(); }); }
});
"""


def star_color_css(color: Any) -> str:
    """A CSS colour for a rating's `color`; unknown or unsafe values fall back to the text colour."""
    if not isinstance(color, str) or not _CSS_WORD.match(color):
        return "inherit"
    return _NAMED.get(color.lower(), color.lower())


def _head(title: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n"
            f"<script>{_DIALOG_SCRIPT}</script>\n</head>\n")


def _nav(user: str) -> str:
    if user:
        who = (f'<div class="user"><span class="username">{escape(user)}</span>'
               f'<a href="logout">Sign out</a></div>')
    else:
        who = '<button type="button" id="sign-in-button" class="btn">Sign in</button>'
    return f'<nav class="bar"><a class="brand" href="#">BookInfo Sample</a>{who}</nav>\n'


_DIALOG = """<dialog id="sign-in-dialog">
<h2>Sign in to BookInfo</h2>
<form method="post" action="login" name="login_form">
<label for="username">Username</label><input id="username" name="username" required>
<label for="password">Password</label><input id="password" name="passwd" type="password">
<div class="actions"><button type="button" id="close-dialog" class="btn secondary">Cancel</button>
<button type="submit" class="btn">Sign in</button></div>
</form>
</dialog>
"""


def _details_section(status: int, details: Any) -> str:
    if status == 200 and isinstance(details, dict):
        cols = (("ISBN-10", "ISBN-10"), ("Publisher", "publisher"), ("Pages", "pages"), ("Type", "type"),
                ("Language", "language"))
        head = "".join(f"<th>{escape(label)}</th>" for label, _ in cols)
        row = "".join(f"<td>{escape(str(details.get(key, '')))}</td>" for _, key in cols)
        body = (f'<h2>Book Details</h2>\n<table class="details"><thead><tr>{head}</tr></thead>'
                f"<tbody><tr>{row}</tr></tbody></table>")
    else:
        body = '<p class="error-title">Error fetching product details</p>'
        if isinstance(details, dict) and details.get("error"):
            body += f'\n<p class="error-text">{escape(str(details["error"]))}</p>'
    return f'<section class="section book-details">\n{body}\n</section>\n'


def _stars(rating: dict[str, Any]) -> str:
    stars = rating.get("stars")
    if isinstance(stars, int) and not isinstance(stars, bool) and stars:
        n = max(0, min(stars, 5))
        color = rating.get("color")
        color_attr = escape(str(color)) if isinstance(color, str) else ""
        return (f'<div class="stars" data-color="{color_attr}" data-stars="{n}" '
                f'style="color:{star_color_css(color)}">' + _FULL_STAR * n + _EMPTY_STAR * (5 - n) + "</div>")
    if rating.get("error"):
        return f'<p class="rating-error">{escape(str(rating["error"]))}</p>'
    return ""


def _review(review: dict[str, Any], reviews: dict[str, Any]) -> str:
    rating = review.get("rating")
    stars = _stars(rating) if isinstance(rating, dict) else ""
    served = f"Reviews served by: {escape(str(reviews.get('podname', '')))}"
    cluster = reviews.get("clustername")
    if cluster is not None and cluster != "null":
        served += f" on cluster {escape(str(cluster))}"
    return (f'<article class="review">{stars}\n'
            f'<blockquote>"{escape(str(review.get("text", "")))}"</blockquote>\n'
            f'<div class="reviewer">{escape(str(review.get("reviewer", "")))}</div>\n'
            f'<div class="served-by">{served}</div></article>\n')


def _reviews_section(status: int, reviews: Any) -> str:
    if status == 200 and isinstance(reviews, dict):
        items = [r for r in reviews.get("reviews") or [] if isinstance(r, dict)]
        body = ('<h2>Book Reviews</h2>\n<div class="review-list">\n'
                + "".join(_review(r, reviews) for r in items) + "</div>")
    else:
        body = '<p class="error-title">Error fetching product reviews</p>'
        if isinstance(reviews, dict) and reviews.get("error"):
            body += f'\n<p class="error-text">{escape(str(reviews["error"]))}</p>'
    return f'<section class="section reviews">\n{body}\n</section>\n'


def render_product_page(product: dict[str, Any] | None, details_status: int, details: Any,
                        reviews_status: int, reviews: Any, user: str) -> str:
    """The `/productpage` document."""
    title = escape(str(product["title"])) if product else ""
    # descriptionHtml is the app's own constant markup (a link and a <b>), rendered unescaped as the original.
    description = str(product["descriptionHtml"]) if product else ""
    return (_head("Simple Bookstore App") + "<body>\n" + _nav(user) + _DIALOG + "<main>\n"
            f'<h1 class="title">{title}</h1>\n<p class="description">{description}</p>\n'
            + _details_section(details_status, details) + _reviews_section(reviews_status, reviews)
            + "</main>\n</body>\n</html>\n")


def _service_table(node: dict[str, Any]) -> str:
    rows = []
    for key in ("name", "endpoint", "children"):
        value = node.get(key)
        if key == "children":
            cell = "".join(_service_table(c) for c in value or [] if isinstance(c, dict))
        else:
            cell = escape(str(value))
        rows.append(f"<tr><th>{escape(key)}</th><td>{cell}</td></tr>")
    return '<table class="services">' + "".join(rows) + "</table>"


def render_index(services: dict[str, Any]) -> str:
    """The `/` document: the service tree and links to the product page as a normal user and a tester."""
    return (_head("Simple Bookstore App") + "<body>\n<main>\n"
            "<h3>Hello! This is a simple bookstore application consisting of three services as shown below</h3>\n"
            + _service_table(services)
            + "\n<p>Click on one of the links below to auto generate a request to the backend as a real user "
              "or a tester</p>\n<ul>\n<li><a href=\"/productpage?u=normal\">Normal user</a></li>\n"
              "<li><a href=\"/productpage?u=test\">Test user</a></li>\n</ul>\n</main>\n</body>\n</html>\n")
