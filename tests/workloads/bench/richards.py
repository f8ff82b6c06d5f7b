"""CPU-bound benchmark: an operating-system task scheduler simulation (object-heavy,
many small method calls), in the spirit of Martin Richards' benchmark."""
import sys


class Packet:
    def __init__(self, link, ident, kind):
        self.link, self.ident, self.kind, self.datum = link, ident, kind, 0


class Task:
    def __init__(self, sched, ident, priority, queue):
        self.sched, self.ident, self.priority, self.queue = sched, ident, priority, queue
        self.held = False
        sched.tasks[ident] = self

    def ready(self):
        return self.queue is not None and not self.held

    def take(self):
        packet, self.queue = self.queue, self.queue.link
        packet.link = None
        return packet


class Worker(Task):
    def __init__(self, *a):
        super().__init__(*a)
        self.dest, self.count = 2, 0

    def run(self, packet):
        self.dest = 3 if self.dest == 2 else 2
        packet.ident = self.dest
        packet.datum = (packet.datum + self.count) % 26
        self.count += 1
        return self.sched.send(packet)


class Handler(Task):
    def run(self, packet):
        packet.datum += 1
        if packet.datum % 7 == 0:
            self.held = True
            self.sched.hold_count += 1
        packet.ident = 1
        return self.sched.send(packet)


class Scheduler:
    def __init__(self):
        self.tasks, self.hold_count, self.sent = {}, 0, 0

    def send(self, packet):
        self.sent += 1
        task = self.tasks[packet.ident]
        packet.link = task.queue
        task.queue = packet
        return packet

    def release_all(self):
        for task in self.tasks.values():
            task.held = False

    def schedule(self, rounds):
        for _ in range(rounds):
            progressed = False
            for task in sorted(self.tasks.values(), key=lambda t: -t.priority):
                if task.ready():
                    task.run(task.take())
                    progressed = True
            if not progressed:
                self.release_all()


def main(rounds):
    s = Scheduler()
    packets = None
    for i in range(6):
        packets = Packet(packets, 1, i)
    Worker(s, 1, 10, packets)
    Handler(s, 2, 20, None)
    Handler(s, 3, 30, None)
    s.schedule(rounds)
    return s.sent, s.hold_count


if __name__ == "__main__":
    print(*main(int(sys.argv[1]) if len(sys.argv) > 1 else 600000))
