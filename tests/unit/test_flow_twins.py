"""Each asynchronous wrapper of the flows runs the same steps as its synchronous twin, around an
``await``: their bodies, read from the source, are held equal, so a guard added to one and not
the other fails here rather than in an application."""

from __future__ import annotations

import ast
import inspect

import pytest

from kafka_autotrace.core import receive_flow, send_flow

ASYNC = "_async"


class _Synchronous(ast.NodeTransformer):
    """An async function's body as its synchronous twin would be written."""

    def visit_Await(self, node: ast.Await) -> ast.AST:
        return self.visit(node.value)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Name(node.id.removesuffix(ASYNC), node.ctx)


def _body(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return "\n".join(ast.unparse(statement) for statement in body)


def _twins() -> list[tuple[str, ast.FunctionDef, ast.AsyncFunctionDef]]:
    found = []
    classes = [
        node
        for module in (send_flow, receive_flow)
        for node in ast.parse(inspect.getsource(module)).body
        if isinstance(node, ast.ClassDef)
    ]
    for flow in classes:
        methods = {node.name: node for node in flow.body if isinstance(node, ast.FunctionDef)}
        for node in flow.body:
            if isinstance(node, ast.AsyncFunctionDef):
                twin = methods[node.name.removesuffix(ASYNC)]
                found.append((f"{flow.name}.{twin.name}", twin, node))
    return found


def test_every_asynchronous_wrapper_has_a_twin() -> None:
    assert sorted(name for name, _, _ in _twins()) == [
        "ReceiveFlow.batch",
        "ReceiveFlow.close",
        "ReceiveFlow.one",
        "ReceiveFlow.seek",
        "SendFlow.call",
    ]


@pytest.mark.parametrize("name, sync, async_", _twins(), ids=[name for name, *_ in _twins()])
def test_the_twins_run_the_same_steps(
    name: str, sync: ast.FunctionDef, async_: ast.AsyncFunctionDef
) -> None:
    assert _body(_Synchronous().visit(async_)) == _body(sync)
