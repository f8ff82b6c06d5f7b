"""CPU-bound benchmark: a small ray tracer (spheres, diffuse light) with vector objects."""
import math
import sys


class Vec:
    __slots__ = ("x", "y", "z")

    def __init__(self, x, y, z):
        self.x, self.y, self.z = x, y, z

    def __add__(self, o):
        return Vec(self.x + o.x, self.y + o.y, self.z + o.z)

    def __sub__(self, o):
        return Vec(self.x - o.x, self.y - o.y, self.z - o.z)

    def scale(self, k):
        return Vec(self.x * k, self.y * k, self.z * k)

    def dot(self, o):
        return self.x * o.x + self.y * o.y + self.z * o.z

    def norm(self):
        return self.scale(1.0 / math.sqrt(self.dot(self)))


class Sphere:
    def __init__(self, center, radius, shade):
        self.center, self.radius, self.shade = center, radius, shade

    def hit(self, origin, direction):
        oc = origin - self.center
        b = oc.dot(direction)
        c = oc.dot(oc) - self.radius * self.radius
        disc = b * b - c
        if disc < 0:
            return None
        t = -b - math.sqrt(disc)
        return t if t > 1e-6 else None


def trace(scene, light, origin, direction):
    best, nearest = None, float("inf")
    for sphere in scene:
        t = sphere.hit(origin, direction)
        if t is not None and t < nearest:
            best, nearest = sphere, t
    if best is None:
        return 0.0
    point = origin + direction.scale(nearest)
    normal = (point - best.center).norm()
    return best.shade * max(0.0, normal.dot((light - point).norm()))


def render(size):
    scene = [Sphere(Vec(0, -1, 3), 1, 0.9), Sphere(Vec(2, 0, 4), 1, 0.6),
             Sphere(Vec(-2, 0, 4), 1, 0.7), Sphere(Vec(0, -5001, 0), 5000, 0.4)]
    light, eye, total = Vec(2, 5, -1), Vec(0, 0, 0), 0.0
    for j in range(size):
        for i in range(size):
            d = Vec((i - size / 2) / size, (size / 2 - j) / size, 1).norm()
            total += trace(scene, light, eye, d)
    return total


if __name__ == "__main__":
    print(f"{render(int(sys.argv[1]) if len(sys.argv) > 1 else 400):.3f}")
