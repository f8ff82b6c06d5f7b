"""CPU-bound benchmark: a planetary n-body simulation in pure Python floats."""
import sys

BODIES = [
    # x, y, z, vx, vy, vz, mass
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 39.47841760435743],
    [4.84, -1.16, -0.10, 0.606, 2.81, -0.025, 0.0377],
    [8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.0113],
    [12.89, -15.11, -0.22, 1.08, 0.868, -0.010, 0.0017],
    [15.38, -25.92, 0.18, 0.979, 0.594, -0.034, 0.0020],
]


def advance(bodies, dt, steps):
    pairs = [(a, b) for i, a in enumerate(bodies) for b in bodies[i + 1:]]
    for _ in range(steps):
        for a, b in pairs:
            dx, dy, dz = a[0] - b[0], a[1] - b[1], a[2] - b[2]
            d2 = dx * dx + dy * dy + dz * dz
            mag = dt / (d2 * d2 ** 0.5)
            bm, am = b[6] * mag, a[6] * mag
            a[3] -= dx * bm; a[4] -= dy * bm; a[5] -= dz * bm
            b[3] += dx * am; b[4] += dy * am; b[5] += dz * am
        for body in bodies:
            body[0] += dt * body[3]; body[1] += dt * body[4]; body[2] += dt * body[5]


def energy(bodies):
    e = 0.0
    for i, a in enumerate(bodies):
        e += 0.5 * a[6] * (a[3] ** 2 + a[4] ** 2 + a[5] ** 2)
        for b in bodies[i + 1:]:
            d = ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2) ** 0.5
            e -= a[6] * b[6] / d
    return e


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 260000
    bodies = [list(b) for b in BODIES]
    advance(bodies, 0.01, steps)
    print(f"{energy(bodies):.9f}")
