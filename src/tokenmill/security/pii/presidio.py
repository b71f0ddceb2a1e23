"""Names and places, from Presidio's named-entity recognition: the optional `pii` extra
(`pip install 'tokenmill[pii]'` and a spaCy model). English only: Presidio has no Chinese
recognizers and a spaCy English model finds no entities in Chinese text, so Chinese names and
addresses are not covered. It is a statistical model, not a pattern: what it finds depends on
the model, and masked text is not guaranteed to have nothing left for it to find."""

import importlib
import importlib.util
from collections.abc import Iterable
from functools import cache
from typing import Any

from tokenmill.security.pii.detect import resolve
from tokenmill.security.pii.kinds import Finding, NerKind

MISSING = (
    "the PII kinds person, location and address need the `pii` extra: pip install 'tokenmill[pii]'"
)
DEFAULT_MODEL = "en_core_web_lg"  # Presidio's own default spaCy model
# Presidio has no street-address recognizer: "address" is what its model tags as a place
# (spaCy's GPE, LOC and FAC become Presidio's LOCATION), the same spans as "location".
_ENTITIES = {NerKind.PERSON: "PERSON", NerKind.LOCATION: "LOCATION", NerKind.ADDRESS: "LOCATION"}


def available() -> bool:
    return importlib.util.find_spec("presidio_analyzer") is not None


def check_available(kinds: frozenset[str]) -> frozenset[str]:
    """`kinds`, or ValueError where some need Presidio and it is not installed here."""
    if kinds & set(NerKind) and not available():
        raise ValueError(MISSING)
    return kinds


@cache
def _analyzer(model: str) -> Any:
    try:
        analyzer = importlib.import_module("presidio_analyzer")
        nlp = importlib.import_module("presidio_analyzer.nlp_engine")
        spacy = importlib.import_module("spacy")
    except ImportError as e:
        raise RuntimeError(MISSING) from e
    if not spacy.util.is_package(model):  # Presidio would download it, mid-request
        raise RuntimeError(
            f"the spaCy model '{model}' is not installed: install its package, or name an "
            "installed one in TOKENMILL_PII_NER_MODEL"
        )
    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    engine = nlp.NlpEngineProvider(nlp_configuration=config).create_engine()
    return analyzer.AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])


def presidio_findings(
    text: str, kinds: Iterable[str] | None = None, model: str = DEFAULT_MODEL
) -> list[Finding]:
    """Presidio's findings in English `text`: of every entity type it knows, named in lower case
    (kinds None), or of the NerKinds in `kinds`, named by them."""
    if kinds is None:
        results = _analyzer(model).analyze(text=text, language="en")
        return resolve([Finding(r.entity_type.lower(), r.start, r.end) for r in results])
    wanted = [NerKind(k) for k in kinds if k in set(NerKind)]
    if not wanted:
        return []
    # one entity type may stand for two kinds (LOCATION: location, address): the first asked
    names: dict[str, NerKind] = {}
    for kind in wanted:
        names.setdefault(_ENTITIES[kind], kind)
    results = _analyzer(model).analyze(text=text, language="en", entities=list(names))
    return resolve([Finding(names[r.entity_type], r.start, r.end) for r in results])
