"""`ecgkt model-card BUNDLE`: a model card (Mitchell et al. 2019) generated from a bundle's metadata."""

from ecgkt.modelcard.card import model_card_html, model_card_markdown

__all__ = ["model_card_html", "model_card_markdown"]
