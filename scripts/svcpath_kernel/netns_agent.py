#!/usr/bin/env python3
"""Runs inside one network namespace for the kernel side (harness.Kernel): sends frames or IP packets
and captures what arrives, one JSON command per stdin line, one JSON answer per stdout line.

  {"op": "open", "ifaces": ["p-eth0", ...]}        capture on these interfaces (AF_PACKET)
  {"op": "frame", "iface": "p-eth0", "hex": "..."} send an Ethernet frame out of an interface
  {"op": "ip", "hex": "..."}                       send an IPv4 packet as a local process (raw socket)
  {"op": "ip6", "hex": "..."}                      the same for IPv6
  {"op": "drain", "wait": 0.05}                    every frame captured since the last drain
  {"op": "join", "iface": "eth0", "group": "239.1.1.1"} join a multicast group on an interface (kept open)
"""
import json
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003


def main():
    caps = {}
    raw = None
    by_src = {}
    joined = []
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        out = {"ok": True}
        if op == "open":
            for name in cmd["ifaces"]:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                s.bind((name, 0))
                s.setblocking(False)
                caps[name] = s
        elif op == "frame":
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind((cmd["iface"], 0))
            s.send(bytes.fromhex(cmd["hex"]))
            s.close()
        elif op == "ip":
            pkt = bytes.fromhex(cmd["hex"])
            src, dst = socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20])
            # The output route is looked up with the socket's bound address, not the header's: a
            # program sending from one of the node's addresses has bound to it (and for broadcast
            # and multicast that picks the device owning it). A foreign source stays unbound.
            s = by_src.get(src)
            if s is None:
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
                # A process sending to a broadcast address says so (else sendto fails with EACCES).
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                try:
                    s.bind((src, 0))
                except OSError:
                    pass
                by_src[src] = s
            try:
                s.sendto(pkt, (dst, 0))
                out["sent"] = True
            except OSError as e:  # EPERM when OUTPUT drops or rejects it
                out["sent"] = False
                out["errno"] = e.errno
        elif op == "ip6":
            pkt = bytes.fromhex(cmd["hex"])
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)  # implies IPV6_HDRINCL
            try:
                s6.sendto(pkt, (socket.inet_ntop(socket.AF_INET6, pkt[24:40]), 0))
                out["sent"] = True
            except OSError as e:
                out["sent"] = False
                out["errno"] = e.errno
            s6.close()
        elif op == "burst":
            # Timing: count copies of one IPv4 packet, each with its own source port (a new
            # connection every time), sent as a local process; the netfilter OUTPUT walk runs
            # inside sendto, so the loop's wall time carries the rules' cost.
            if raw is None:
                raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            base = bytearray.fromhex(cmd["hex"])
            dst = socket.inet_ntoa(bytes(base[16:20]))
            pkts = []
            for i in range(int(cmd["count"])):
                b = bytearray(base)
                port = int(cmd.get("sport", 10000)) + i
                b[20:22] = port.to_bytes(2, "big")
                pkts.append(bytes(b))
            t0 = time.perf_counter_ns()
            for b in pkts:
                raw.sendto(b, (dst, 0))
            out["ns"] = time.perf_counter_ns() - t0
        elif op == "join":
            idx = socket.if_nametoindex(cmd["iface"])
            if ":" in cmd["group"]:
                s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                             socket.inet_pton(socket.AF_INET6, cmd["group"]) + idx.to_bytes(4, sys.byteorder))
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                # struct ip_mreqn: group, local address (any), interface index
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             socket.inet_aton(cmd["group"]) + bytes(4) + idx.to_bytes(4, sys.byteorder))
            joined.append(s)
        elif op == "drain":
            deadline = time.monotonic() + float(cmd.get("wait", 0.05))
            frames = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select(list(caps.values()), [], [], left)
                for s in ready:
                    while True:
                        try:
                            data, addr = s.recvfrom(65535)
                        except BlockingIOError:
                            break
                        # Outgoing copies of what this namespace sent itself are not arrivals.
                        if addr[2] == socket.PACKET_OUTGOING:
                            continue
                        frames.append({"iface": addr[0], "hex": data.hex()})
            out["frames"] = frames
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
