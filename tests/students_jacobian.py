"""Students' answers to ``jacobian-product`` (chapter 04): one right, and one per catalogued mistake,
each written the way a student would write it (plain NumPy, no engine)."""
import numpy as np


def _run(W, U, b, h0, xs, jac, order="left", size=lambda W: np.linalg.norm(W, 2)):
    h, P, Js, bounds = np.array(h0, dtype=float), np.eye(len(b)), [], []
    for n, x in enumerate(xs, start=1):
        a = W @ h + U @ x + b
        h_new = np.tanh(a)
        J = jac(W, a, h_new, h)
        P = J @ P if order == "left" else P @ J
        h = h_new
        Js.append(P.copy())
        bounds.append(size(W) ** n)
    return {"J": np.array(Js), "bound": np.array(bounds)}


def jacobian_products(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: np.diag(1 - h ** 2) @ W)


def jacobian_products_rho(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: np.diag(1 - h ** 2) @ W,
                size=lambda W: max(abs(np.linalg.eigvals(W))))


def jacobian_products_frobenius(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: np.diag(1 - h ** 2) @ W, size=np.linalg.norm)


def jacobian_products_reversed(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: np.diag(1 - h ** 2) @ W, order="right")


def jacobian_products_WT(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: np.diag(1 - h ** 2) @ W.T)


def jacobian_products_broadcast(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: (1 - h ** 2) * W)


def jacobian_products_no_derivative(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: W)


def jacobian_products_derivative_of_a(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: np.diag(1 - a ** 2) @ W)


def jacobian_products_previous_state(W, U, b, h0, xs):
    return _run(W, U, b, h0, xs, lambda W, a, h, hp: np.diag(1 - hp ** 2) @ W)


MISTAKES = [
    (jacobian_products_rho, "wrong_matrix_norm"), (jacobian_products_frobenius, "wrong_matrix_norm"),
    (jacobian_products_reversed, "product_order_reversed"), (jacobian_products_WT, "transposed"),
    (jacobian_products_broadcast, "elementwise_product"),
    (jacobian_products_no_derivative, "activation_derivative_missing"),
    (jacobian_products_derivative_of_a, "activation_derivative_wrong"),
    (jacobian_products_previous_state, "off_by_one_time"),
]
