"""
Reading an ePOS-Print request: a SOAP envelope holding an ``<epos-print>`` document (Epson's
ePOS-Print XML), into a small tree. Pure: bytes in, an ``EposRequest`` or ``SchemaError`` out.

The XML is read with expat and nothing else: a document type declaration (and with it every
entity definition, the "billion laughs" and external entities) is refused, and the depth and
the number of elements are capped before they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
from xml.parsers import expat

EPOS_NS = "http://www.epson-pos.com/schemas/2011/03/epos-print"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_SEPARATOR = " "  # expat joins namespace and local name with it: no URI holds a space

MAX_DEPTH = 16
MAX_ELEMENTS = 100_000


class SchemaError(Exception):
    """The request is not a well-formed ePOS-Print document (Epson's code ``SchemaError``)."""


@dataclass
class Element:
    """One XML element: its namespace, local name, attributes, text and children."""

    namespace: str
    name: str
    attributes: dict[str, str]
    children: list["Element"] = field(default_factory=list)
    text: str = ""

    def child(self, namespace: str, name: str) -> Optional["Element"]:
        for element in self.children:
            if element.namespace == namespace and element.name == name:
                return element
        return None


def _split(tag: str) -> tuple[str, str]:
    namespace, _, name = tag.rpartition(_SEPARATOR)
    return namespace, name


def parse_xml(data: bytes, max_depth: int = MAX_DEPTH,
              max_elements: int = MAX_ELEMENTS) -> Element:
    """The root element of an XML document; ``SchemaError`` for anything that is not one."""
    parser = expat.ParserCreate(namespace_separator=_SEPARATOR)
    stack: list[Element] = []
    texts: list[list[str]] = []  # the character data of each open element, in pieces
    roots: list[Element] = []
    count = 0

    def start(tag: str, attributes: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if count > max_elements:
            raise SchemaError(f"more than {max_elements} elements")
        if len(stack) >= max_depth:
            raise SchemaError(f"elements nested deeper than {max_depth}")
        namespace, name = _split(tag)
        # Attributes of ePOS elements carry no namespace; keep their local names.
        element = Element(namespace, name, {_split(k)[1]: v for k, v in attributes.items()})
        if stack:
            stack[-1].children.append(element)
        else:
            roots.append(element)
        stack.append(element)
        texts.append([])

    def end(tag: str) -> None:
        # Joined once: an image's base64 arrives in many pieces.
        stack.pop().text = "".join(texts.pop())

    def characters(text: str) -> None:
        if texts:
            texts[-1].append(text)

    def no_doctype(*args: object) -> None:
        raise SchemaError("a document type declaration is not allowed")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.StartDoctypeDeclHandler = no_doctype
    parser.EntityDeclHandler = no_doctype
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise SchemaError(f"not well-formed XML: {expat.ErrorString(e.code)} at line "
                          f"{e.lineno}, column {e.offset}") from None
    except RecursionError:  # pragma: no cover - the depth cap comes first
        raise SchemaError("elements nested too deep") from None
    if not roots:
        raise SchemaError("no root element")
    return roots[0]


@dataclass(frozen=True)
class EposRequest:
    """An ePOS-Print request: the ``<epos-print>`` document and the SOAP header's parameters."""

    document: Element
    devid: Optional[str] = None
    timeout: Optional[str] = None
    printjobid: Optional[str] = None


def _in_epos(element: Element) -> bool:
    # The ePOS namespace; documents written by hand sometimes leave it out.
    return element.namespace in (EPOS_NS, "")


def read_request(data: bytes) -> EposRequest:
    """
    The ``<epos-print>`` document of a request body: a SOAP 1.1 envelope whose body holds it
    (with the optional ``<parameter>`` header: devid, timeout, printjobid), or the bare
    document. ``SchemaError`` says what is wrong otherwise.
    """
    root = parse_xml(data)
    parameters: dict[str, str] = {}
    if root.namespace == SOAP_NS and root.name == "Envelope":
        header = root.child(SOAP_NS, "Header")
        if header is not None:
            for parameter in header.children:
                if parameter.name == "parameter" and _in_epos(parameter):
                    parameters.update({p.name: p.text.strip() for p in parameter.children})
        body = root.child(SOAP_NS, "Body")
        if body is None:
            raise SchemaError("the SOAP envelope has no Body")
        documents = [e for e in body.children if e.name == "epos-print" and _in_epos(e)]
        if len(documents) != 1:
            raise SchemaError("the SOAP Body must hold one epos-print element")
        document = documents[0]
    elif root.name == "epos-print" and _in_epos(root):
        document = root
    else:
        raise SchemaError(f"expected a SOAP envelope or epos-print, not {root.name}")
    return EposRequest(document, parameters.get("devid"), parameters.get("timeout"),
                       parameters.get("printjobid"))


def find_documents(root: Element) -> list[Element]:
    """Every ``<epos-print>`` element under ``root`` (itself included), in document order."""
    found: list[Element] = []
    stack = [root]
    while stack:
        element = stack.pop()
        if element.name == "epos-print" and _in_epos(element):
            found.append(element)
        else:
            stack.extend(reversed(element.children))
    return found
