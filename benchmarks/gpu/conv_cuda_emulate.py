#!/usr/bin/env python3
# Developer check of the CUDA conv3d kernels' index math without a GPU
# (needs numpy): emulates, thread by thread, the loaders, the shared-memory
# layouts, ldmatrix (.x2/.x4, .trans) and mma.sync m16n8k16 fragment
# semantics as the PTX ISA defines them, the split-K ranges and the fused
# epilogues of native/ops/conv3d_cuda_{igemm,wgrad,stem,simt}.cu, and compares
# exactly (small-integer data) with a direct convolution. It mirrors the CUDA
# code by hand: after changing a kernel's indexing, change it here too.
# Usage: python3 benchmarks/gpu/conv_cuda_emulate.py [all|tc|wide|stem|stem2|phase|simt|pipe|tcround]
import numpy as np, math, sys, itertools
rng = np.random.default_rng(1)

class Geo:
    def __init__(s, xs, ws, st, pd, dl):
        s.N, s.D, s.Ci = xs[0], list(xs[1:4]), xs[4]
        s.Co, s.K = ws[0], list(ws[1:4])
        s.s, s.p, s.d = list(st), list(pd), list(dl)
        s.O = [(s.D[i] + 2*s.p[i] - s.d[i]*(s.K[i]-1) - 1)//s.s[i] + 1 for i in range(3)]
        s.taps = s.K[0]*s.K[1]*s.K[2]
    def in_pos(s): return s.N*s.D[0]*s.D[1]*s.D[2]
    def out_pos(s): return s.N*s.O[0]*s.O[1]*s.O[2]
    def pointwise(s): return all(s.K[i]==1 and s.s[i]==1 and s.p[i]==0 for i in range(3))

def cdiv(a,b): return -(-a//b)
def tdiv(a,b): return int(a/b) if (a<0)!=(b<0) else a//b   # C truncation
def tmod(a,b): return a - tdiv(a,b)*b

def make_row(g, m, rows, dgrad):
    valid = m < rows
    if not valid: m = 0
    E = g.D if dgrad else g.O
    t = m; e2 = t % E[2]; t //= E[2]; e1 = t % E[1]; t //= E[1]; e0 = t % E[0]; n = t // E[0]
    if dgrad:
        return dict(base=n*g.O[0]*g.O[1]*g.O[2], c=[e0+g.p[0], e1+g.p[1], e2+g.p[2]], valid=valid)
    return dict(base=n*g.D[0]*g.D[1]*g.D[2], c=[e0*g.s[0]-g.p[0], e1*g.s[1]-g.p[1], e2*g.s[2]-g.p[2]], valid=valid)

def split_tap(g, tap):
    k12 = g.K[1]*g.K[2]; a = tap // k12; rem = tap - a*k12; b = rem // g.K[2]; return a, b, rem - b*g.K[2]

def tap_pos(g, r, a, b, c, dgrad):
    if not r['valid']: return -1
    k = [a, b, c]; q = [0]*3
    for j in range(3):
        if dgrad:
            num = r['c'][j] - k[j]*g.d[j]
            if num < 0: return -1
            q[j] = tdiv(num, g.s[j])
            if q[j]*g.s[j] != num: return -1
            if q[j] >= g.O[j]: return -1
        else:
            q[j] = r['c'][j] + k[j]*g.d[j]
            if q[j] < 0 or q[j] >= g.D[j]: return -1
    if dgrad: return r['base'] + (q[0]*g.O[1] + q[1])*g.O[2] + q[2]
    return r['base'] + (q[0]*g.D[1] + q[1])*g.D[2] + q[2]

# ---- PTX semantics ----
def ldsm(smem, addrs, nmat, trans):
    regs = [[None]*nmat for _ in range(32)]
    for i in range(nmat):
        M = np.array([smem[addrs[8*i+j]:addrs[8*i+j]+8] for j in range(8)])
        assert M.shape == (8, 8)
        for T in range(32):
            if not trans: regs[T][i] = (M[T//4][2*(T%4)], M[T//4][2*(T%4)+1])
            else: regs[T][i] = (M[2*(T%4)][T//4], M[2*(T%4)+1][T//4])
    return regs

def mma(acc, a, b0, b1):  # acc[32][4]; a[32][4] pairs; b0,b1[32] pairs
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for T in range(32):
        g, t = T//4, T%4
        for h in range(2):
            A[g][2*t+h] = a[T][0][h]; A[g+8][2*t+h] = a[T][1][h]
            A[g][2*t+8+h] = a[T][2][h]; A[g+8][2*t+8+h] = a[T][3][h]
            B[2*t+h][g] = b0[T][h]; B[2*t+8+h][g] = b1[T][h]
    assert not np.isnan(A).any() and not np.isnan(B).any(), "read unwritten shared memory"
    C = A @ B
    for T in range(32):
        g, t = T//4, T%4
        for h in range(2):
            acc[T][h] += C[g][2*t+h]; acc[T][2+h] += C[g+8][2*t+h]

def epi(out, idx, col, v, bias, accumulate, relu):
    if bias is not None: v += bias[col]
    if accumulate: v += out[idx]
    if relu: v = max(v, 0.0)
    out[idx] = v

def store_frag(out, acc, row0, col0, rows, cols, bias, accumulate, relu):
    for lane in range(32):
        col = col0 + 2*(lane & 3)
        for h in range(2):
            row = row0 + (lane >> 2) + 8*h
            if row >= rows: continue
            if col < cols: epi(out, row*cols+col, col, acc[lane][2*h], bias, accumulate, relu)
            if col+1 < cols: epi(out, row*cols+col+1, col+1, acc[lane][2*h+1], bias, accumulate, relu)

# ---- tc_fwd_dgrad_kernel ----
def make_row_phase(g, ph, m, rows):
    if m >= rows: return dict(base=-1, c=[0, 0, 0], valid=False)
    t = m; t2 = t % ph['E'][2]; t //= ph['E'][2]; t1 = t % ph['E'][1]; t //= ph['E'][1]; t0 = t % ph['E'][0]; n = t // ph['E'][0]
    tt = [t0, t1, t2]
    return dict(base=n*g.O[0]*g.O[1]*g.O[2], c=[ph['i0'][j] + g.s[j]*tt[j] + g.p[j] for j in range(3)], valid=True)

def phase_row_to_input(g, ph, m):
    t2 = m % ph['E'][2]; m //= ph['E'][2]; t1 = m % ph['E'][1]; m //= ph['E'][1]; t0 = m % ph['E'][0]; n = m // ph['E'][0]
    return ((n*g.D[0] + ph['i0'][0] + g.s[0]*t0)*g.D[1] + ph['i0'][1] + g.s[1]*t1)*g.D[2] + ph['i0'][2] + g.s[2]*t2

def stride_phases(g):  # mirrors conv3d_cuda.cu
    out = []
    if g.s == [1, 1, 1] or any(k > 8 for k in g.K): return out
    for phi in itertools.product(*[range(v) for v in g.s]):
        ph = dict(i0=[0]*3, E=[0]*3, nt=[0]*3, tk=[[], [], []]); empty = False
        for j in range(3):
            ph['i0'][j] = ((phi[j] - g.p[j]) % g.s[j] + g.s[j]) % g.s[j]
            ph['E'][j] = (g.D[j] - ph['i0'][j] + g.s[j] - 1)//g.s[j] if ph['i0'][j] < g.D[j] else 0
            empty |= ph['E'][j] == 0
            ph['tk'][j] = [k for k in range(g.K[j]) if (k*g.d[j]) % g.s[j] == phi[j]]; ph['nt'][j] = len(ph['tk'][j])
        if not empty: out.append(ph)
    return out

def tc_fwd_dgrad(g, a, b, out, BM, BN, WM, WN, dgrad, pw, bias=None, accumulate=False, relu=False, ph=None):
    NT = WM*WN*32; WTM, WTN = BM//WM, BN//WN; MI, NI = WTM//16, WTN//8
    CA, CB = BM*4//NT, BN*4//NT; BK, LDS = 32, 40
    Cg = g.Co if dgrad else g.Ci; cols = g.Ci if dgrad else g.Co
    rows = g.N*ph['E'][0]*ph['E'][1]*ph['E'][2] if ph else (g.in_pos() if dgrad else g.out_pos())
    Kfull = g.taps*Cg; K = ph['nt'][0]*ph['nt'][1]*ph['nt'][2]*Cg if ph else Kfull; KT = cdiv(K, BK)
    L = [ph['nt'][0], ph['nt'][1], ph['nt'][2]] if ph else g.K
    ntn = cdiv(cols, BN)
    for bid in range(cdiv(rows, BM)*ntn):
        m0 = (bid // ntn)*BM; n0 = (bid % ntn)*BN
        rowA = {}
        for tid in range(NT):
            for i in range(CA):
                m = m0 + ((tid + i*NT) >> 2)
                rowA[tid, i] = dict(valid=m < rows, base=m) if pw else (make_row_phase(g, ph, m, rows) if ph else make_row(g, m, rows, dgrad))
        acc = {(w, i, j): [[0.0]*4 for _ in range(32)] for w in range(WM*WN) for i in range(MI) for j in range(NI)}
        kst = {}
        def next_tap(st):
            st[3] += 1
            if st[3] == L[2]:
                st[3] = 0; st[2] += 1
                if st[2] == L[1]: st[2] = 0; st[1] += 1
        for tid in range(NT):
            st = [(tid & 3)*8, 0, 0, 0]
            if not pw:
                while st[0] >= Cg: st[0] -= Cg; next_tap(st)
            kst[tid] = st
        for kt in range(KT):
            As = np.full(BM*LDS, np.nan); Bs = np.full(BN*LDS, np.nan)
            for tid in range(NT):
                for i in range(CA):
                    idd = tid + i*NT; r, q = idd >> 2, idd & 3; k = kt*BK + q*8
                    src, ok = 0, False
                    if k < K and rowA[tid, i]['valid']:
                        if pw: src, ok = rowA[tid, i]['base']*Cg + k, True
                        else:
                            st = kst[tid]
                            kk = (ph['tk'][0][st[1]], ph['tk'][1][st[2]], ph['tk'][2][st[3]]) if ph else (st[1], st[2], st[3])
                            pos = tap_pos(g, rowA[tid, i], *kk, dgrad)
                            if pos >= 0: src, ok = pos*Cg + st[0], True
                    As[r*LDS+q*8:r*LDS+q*8+8] = a[src:src+8] if ok else 0
                for i in range(CB):
                    idd = tid + i*NT; r, q = idd >> 2, idd & 3; k = kt*BK + q*8; n = n0 + r
                    ok = k < K and n < cols; col = k
                    if ok and ph:
                        st = kst[tid]
                        col = ((ph['tk'][0][st[1]]*g.K[1] + ph['tk'][1][st[2]])*g.K[2] + ph['tk'][2][st[3]])*Cg + st[0]
                    Bs[r*LDS+q*8:r*LDS+q*8+8] = b[n*Kfull+col:n*Kfull+col+8] if ok else 0
                if not pw:
                    st = kst[tid]; st[0] += BK
                    while st[0] >= Cg: st[0] -= Cg; next_tap(st)
            for w in range(WM*WN):
                wm, wn = w // WN, w % WN
                for ks in range(BK//16):
                    af = [ldsm(As, [(wm*WTM + i*16 + (l & 15))*LDS + ks*16 + (l >> 4)*8 for l in range(32)], 4, False) for i in range(MI)]
                    bfr = {}
                    for j2 in range(NI//2):
                        t4 = ldsm(Bs, [(wn*WTN + j2*16 + (l & 7) + (l >> 4)*8)*LDS + ks*16 + ((l >> 3) & 1)*8 for l in range(32)], 4, False)
                        bfr[2*j2] = ([t4[l][0] for l in range(32)], [t4[l][1] for l in range(32)])
                        bfr[2*j2+1] = ([t4[l][2] for l in range(32)], [t4[l][3] for l in range(32)])
                    for i in range(MI):
                        for j in range(NI): mma(acc[w, i, j], af[i], *bfr[j])
        for w in range(WM*WN):
            wm, wn = w // WN, w % WN
            for i in range(MI):
                for j in range(NI):
                    if not ph:
                        store_frag(out, acc[w, i, j], m0 + wm*WTM + i*16, n0 + wn*WTN + j*8, rows, cols, bias, accumulate, relu)
                        continue
                    for lane in range(32):
                        for h in range(2):
                            m = m0 + wm*WTM + i*16 + (lane >> 2) + 8*h
                            if m >= rows: continue
                            orow = phase_row_to_input(g, ph, m); col = n0 + wn*WTN + j*8 + 2*(lane & 3)
                            if col < cols: epi(out, orow*cols + col, col, acc[w, i, j][lane][2*h], bias, accumulate, relu)
                            if col + 1 < cols: epi(out, orow*cols + col + 1, col + 1, acc[w, i, j][lane][2*h+1], bias, accumulate, relu)

# ---- tc_wgrad_kernel ----
class PosState:
    def set(s, g, p):
        s.o = [0]*3; s.o[2] = p % g.O[2]; p //= g.O[2]; s.o[1] = p % g.O[1]; p //= g.O[1]; s.o[0] = p % g.O[0]; s.n = p // g.O[0]
    def advance(s, g, step):
        s.o[2] += step
        if s.o[2] < g.O[2]: return
        q = s.o[2] // g.O[2]; s.o[2] -= q*g.O[2]; s.o[1] += q
        if s.o[1] < g.O[1]: return
        q = s.o[1] // g.O[1]; s.o[1] -= q*g.O[1]; s.o[0] += q
        if s.o[0] < g.O[0]: return
        q = s.o[0] // g.O[0]; s.o[0] -= q*g.O[0]; s.n += q

def tc_wgrad(g, x, dy, BM, BN, WM, WN, pw, splits):
    NT = WM*WN*32; WTM, WTN = BM//WM, BN//WN; MI, NI = WTM//16, WTN//8
    LA, LB = BM+8, BN+8; BK = 32; CA, CB = BK*BM//8//NT, BK*BN//8//NT
    K = g.taps*g.Ci; R = g.out_pos()
    steps = cdiv(R, BK); per = cdiv(steps, splits)
    part = np.full(splits*g.Co*K, np.nan)
    for bz in range(splits):
      for by in range(cdiv(g.Co, BM)):
        for bx in range(cdiv(K, BN)):
            k0, co0 = bx*BN, by*BM
            r_begin = min(bz*per*BK, R); r_end = min(r_begin + per*BK, R); KT = cdiv(r_end - r_begin, BK)
            st = {}
            for tid in range(NT):
                for i in range(CB):
                    idd = tid + i*NT; k = k0 + (idd % (BN//8))*8; kval = k < K
                    tap = k // g.Ci if kval else 0; kcin = k - tap*g.Ci if kval else 0
                    a, b, c = split_tap(g, tap)
                    ps = PosState(); prow = r_begin + idd // (BN//8); ps.set(g, min(prow, R-1))
                    st[tid, i] = dict(koff=[a*g.d[0]-g.p[0], b*g.d[1]-g.p[1], c*g.d[2]-g.p[2]], kcin=kcin, kval=kval, prow=prow, ps=ps)
            acc = {(w, i, j): [[0.0]*4 for _ in range(32)] for w in range(WM*WN) for i in range(MI) for j in range(NI)}
            for kt in range(KT):
                As = np.full(BK*LA, np.nan); Bs = np.full(BK*LB, np.nan)
                for tid in range(NT):
                    for i in range(CA):
                        idd = tid + i*NT; r, q = idd // (BM//8), idd % (BM//8)
                        pos = r_begin + kt*BK + r; co = co0 + q*8; ok = pos < r_end and co < g.Co
                        As[r*LA+q*8:r*LA+q*8+8] = dy[pos*g.Co+co:pos*g.Co+co+8] if ok else 0
                    for i in range(CB):
                        s = st[tid, i]; idd = tid + i*NT; r, q = idd // (BN//8), idd % (BN//8)
                        ok = s['kval'] and s['prow'] < r_end; src = 0
                        if ok:
                            if pw: src = s['prow']*g.Ci + s['kcin']
                            else:
                                ps = s['ps']; i0 = ps.o[0]*g.s[0] + s['koff'][0]; i1 = ps.o[1]*g.s[1] + s['koff'][1]; i2 = ps.o[2]*g.s[2] + s['koff'][2]
                                ok = 0 <= i0 < g.D[0] and 0 <= i1 < g.D[1] and 0 <= i2 < g.D[2]
                                if ok: src = (((ps.n*g.D[0] + i0)*g.D[1] + i1)*g.D[2] + i2)*g.Ci + s['kcin']
                        Bs[r*LB+q*8:r*LB+q*8+8] = x[src:src+8] if ok else 0
                        s['prow'] += BK
                        if not pw and s['prow'] < r_end: s['ps'].advance(g, BK)
                for w in range(WM*WN):
                    wm, wn = w // WN, w % WN
                    for ks in range(BK//16):
                        af = []
                        for i in range(MI):
                            ad = []
                            for l in range(32):
                                mi = l >> 3; r = ks*16 + (l & 7) + (mi >> 1)*8; c = wm*WTM + i*16 + (mi & 1)*8
                                ad.append(r*LA + c)
                            af.append(ldsm(As, ad, 4, True))
                        bfr = {}
                        for j2 in range(NI//2):
                            ad = []
                            for l in range(32):
                                mi = l >> 3; r = ks*16 + (l & 7) + (mi & 1)*8; c = wn*WTN + j2*16 + (mi >> 1)*8
                                ad.append(r*LB + c)
                            t4 = ldsm(Bs, ad, 4, True)
                            bfr[2*j2] = ([t4[l][0] for l in range(32)], [t4[l][1] for l in range(32)])
                            bfr[2*j2+1] = ([t4[l][2] for l in range(32)], [t4[l][3] for l in range(32)])
                        for i in range(MI):
                            for j in range(NI): mma(acc[w, i, j], af[i], *bfr[j])
            for w in range(WM*WN):
                wm, wn = w // WN, w % WN
                for i in range(MI):
                    for j in range(NI):
                        for lane in range(32):
                            k = k0 + wn*WTN + j*8 + 2*(lane & 3)
                            if k >= K: continue
                            for h in range(2):
                                co = co0 + wm*WTM + i*16 + (lane >> 2) + 8*h
                                if co < g.Co:
                                    base = bz*g.Co*K + co*K + k
                                    part[base] = acc[w, i, j][lane][2*h]; part[base+1] = acc[w, i, j][lane][2*h+1]
    return part.reshape(splits, g.Co*K).sum(0)

# ---- stem kernels ----
KP, LK, FBM, SBN, WBR, LD = 352, 360, 128, 64, 32, 72
def tap_table(g):
    t = []
    for k in range(g.taps):
        a, b, c = split_tap(g, k); t.append((a*g.d[0]-g.p[0], b*g.d[1]-g.p[1], c*g.d[2]-g.p[2]))
    return t

def build_im2col(g, x, toff, tile, nrows, pos0, R, kp):
    for r in range(nrows):
        pos = pos0 + r; dst = r*LK
        if pos >= R:
            tile[dst:dst+kp] = 0; continue
        t = pos; o2 = t % g.O[2]; t //= g.O[2]; o1 = t % g.O[1]; t //= g.O[1]; o0 = t % g.O[0]; n = t // g.O[0]
        b0, b1, b2 = o0*g.s[0], o1*g.s[1], o2*g.s[2]; xn = n*g.D[0]*g.D[1]*g.D[2]
        for lane in range(32):
            for k in range(lane*2, kp, 64):
                for h in range(2):
                    kk = k + h; v = 0
                    if kk < g.taps:
                        i0, i1, i2 = b0 + toff[kk][0], b1 + toff[kk][1], b2 + toff[kk][2]
                        if 0 <= i0 < g.D[0] and 0 <= i1 < g.D[1] and 0 <= i2 < g.D[2]: v = x[xn + (i0*g.D[1] + i1)*g.D[2] + i2]
                    tile[dst + kk] = v

def stem_fwd(g, x, w, y, bias, sms=3):
    kp = cdiv(g.taps, 16)*16; R = g.out_pos(); toff = tap_table(g); tiles = cdiv(R, FBM)
    for by in range(cdiv(g.Co, SBN)):
        co0 = by*SBN
        Bs = np.full(SBN*LK, np.nan)
        for i in range(SBN*kp):
            r = i // kp; k = i - r*kp; co = co0 + r
            Bs[r*LK+k] = w[co*g.taps + k] if (co < g.Co and k < g.taps) else 0
        for bx in range(min(tiles, sms)):
            for tile in range(bx, tiles, min(tiles, sms)):
                As = np.full(FBM*LK, np.nan)
                build_im2col(g, x, toff, As, FBM, tile*FBM, R, kp)
                for warp in range(8):
                    wm, wn = warp >> 1, warp & 1
                    acc = {(i, j): [[0.0]*4 for _ in range(32)] for i in range(2) for j in range(4)}
                    for ks in range(kp//16):
                        af = [ldsm(As, [(wm*32 + i*16 + (l & 15))*LK + ks*16 + (l >> 4)*8 for l in range(32)], 4, False) for i in range(2)]
                        bfr = {}
                        for j2 in range(2):
                            t4 = ldsm(Bs, [(wn*32 + j2*16 + (l & 7) + (l >> 4)*8)*LK + ks*16 + ((l >> 3) & 1)*8 for l in range(32)], 4, False)
                            bfr[2*j2] = ([t4[l][0] for l in range(32)], [t4[l][1] for l in range(32)])
                            bfr[2*j2+1] = ([t4[l][2] for l in range(32)], [t4[l][3] for l in range(32)])
                        for i in range(2):
                            for j in range(4): mma(acc[i, j], af[i], *bfr[j])
                    for i in range(2):
                        for j in range(4):
                            store_frag(y, acc[i, j], tile*FBM + wm*32 + i*16, co0 + wn*32 + j*8, R, g.Co, bias, False, False)

def stem_wgrad(g, x, dy, splits):
    R = g.out_pos(); toff = tap_table(g); NI = KP//4//8
    per = cdiv(cdiv(R, splits), WBR)*WBR
    part = np.full(splits*g.Co*g.taps, np.nan)
    for bx in range(splits):
        for by in range(cdiv(g.Co, SBN)):
            co0 = by*SBN; r_begin = min(bx*per, R); r_end = min(r_begin + per, R)
            acc = {(w, i, j): [[0.0]*4 for _ in range(32)] for w in range(8) for i in range(2) for j in range(NI)}
            for r0 in range(r_begin, r_end, WBR):
                Xs = np.full(WBR*LK, np.nan); Ds = np.full(WBR*LD, np.nan)
                build_im2col(g, x, toff, Xs, WBR, r0, r_end, KP)
                for i in range(WBR*SBN):
                    r = i // SBN; c = i - r*SBN; co = co0 + c; pos = r0 + r
                    Ds[r*LD + c] = dy[pos*g.Co + co] if (pos < r_end and co < g.Co) else 0
                for warp in range(8):
                    wm, wn = warp >> 2, warp & 3
                    for ks in range(WBR//16):
                        af = []
                        for i in range(2):
                            ad = []
                            for l in range(32):
                                mi = l >> 3; r = ks*16 + (l & 7) + (mi >> 1)*8
                                ad.append(r*LD + wm*32 + i*16 + (mi & 1)*8)
                            af.append(ldsm(Ds, ad, 4, True))
                        for j in range(NI):
                            ad = []
                            for l in range(32):
                                r = ks*16 + (l & 7) + ((l >> 3) & 1)*8
                                ad.append(r*LK + wn*(NI*8) + j*8)
                            t2 = ldsm(Xs, ad[:16] + ad[:16], 2, True)
                            b0 = [t2[l][0] for l in range(32)]; b1 = [t2[l][1] for l in range(32)]
                            for i in range(2): mma(acc[warp, i, j], af[i], b0, b1)
            for warp in range(8):
                wm, wn = warp >> 2, warp & 3
                for i in range(2):
                    for j in range(NI):
                        for lane in range(32):
                            for v in range(4):
                                co = co0 + wm*32 + i*16 + (lane >> 2) + 8*(v >> 1)
                                k = wn*(NI*8) + j*8 + 2*(lane & 3) + (v & 1)
                                if co < g.Co and k < g.taps: part[bx*g.Co*g.taps + co*g.taps + k] = acc[warp, i, j][lane][v]
    return part.reshape(splits, -1).sum(0)

# ---- references ----
def ref_fwd(g, x, w):
    X = x.reshape(g.N, *g.D, g.Ci); W = w.reshape(g.Co, *g.K, g.Ci)
    Y = np.zeros((g.N, *g.O, g.Co))
    for o in itertools.product(*[range(v) for v in g.O]):
        for k in itertools.product(*[range(v) for v in g.K]):
            i = [o[j]*g.s[j] - g.p[j] + k[j]*g.d[j] for j in range(3)]
            if all(0 <= i[j] < g.D[j] for j in range(3)):
                Y[:, o[0], o[1], o[2], :] += X[:, i[0], i[1], i[2], :] @ W[:, k[0], k[1], k[2], :].T
    return Y.reshape(-1)

def ref_bwd(g, x, w, dy):
    X = x.reshape(g.N, *g.D, g.Ci); W = w.reshape(g.Co, *g.K, g.Ci); DY = dy.reshape(g.N, *g.O, g.Co)
    DX = np.zeros_like(X); DW = np.zeros_like(W)
    for o in itertools.product(*[range(v) for v in g.O]):
        for k in itertools.product(*[range(v) for v in g.K]):
            i = [o[j]*g.s[j] - g.p[j] + k[j]*g.d[j] for j in range(3)]
            if all(0 <= i[j] < g.D[j] for j in range(3)):
                DX[:, i[0], i[1], i[2], :] += DY[:, o[0], o[1], o[2], :] @ W[:, k[0], k[1], k[2], :]
                DW[:, k[0], k[1], k[2], :] += DY[:, o[0], o[1], o[2], :].T @ X[:, i[0], i[1], i[2], :]
    return DX.reshape(-1), DW.reshape(-1)

def ints(n): return rng.integers(-3, 4, n).astype(np.float64)

def check(name, got, want):
    ok = np.array_equal(got, want)
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f"  max diff {np.nanmax(np.abs(got-want))}, nan {np.isnan(got).sum()}"))
    return ok

CFGS = [(128, 128, 2, 4), (128, 64, 4, 2), (64, 128, 2, 4), (64, 64, 2, 2)]
def run_case(xs, ws, st, pd, dl, cfgs=CFGS, splits=(1, 3)):
    g = Geo(xs, ws, st, pd, dl)
    x = ints(int(np.prod(xs))); w = ints(int(np.prod(ws))); dy = ints(g.out_pos()*g.Co)
    yref = ref_fwd(g, x, w); dxref, dwref = ref_bwd(g, x, w, dy)
    wt = w.reshape(g.Co, g.taps, g.Ci).transpose(2, 1, 0).reshape(-1).copy()
    bias = ints(g.Co); y0 = ints(g.out_pos()*g.Co)
    allok = True
    tag = f"x{xs} w{ws} s{st} p{pd} d{dl}"
    for (BM, BN, WM, WN) in cfgs:
        if g.Ci % 8 == 0:
            y = np.full(g.out_pos()*g.Co, np.nan); tc_fwd_dgrad(g, x, w, y, BM, BN, WM, WN, False, g.pointwise())
            allok &= check(f"fwd {BM}x{BN} {tag}", y, yref)
            y = y0.copy(); tc_fwd_dgrad(g, x, w, y, BM, BN, WM, WN, False, g.pointwise(), bias, True, True)
            allok &= check(f"fwd+bias+acc+relu {BM}x{BN} {tag}", y, np.maximum(y0 + yref + np.tile(bias, g.out_pos()), 0))
        if g.Co % 8 == 0:
            dx = np.full(g.in_pos()*g.Ci, np.nan); phases = [] if g.pointwise() else stride_phases(g)
            if not phases: tc_fwd_dgrad(g, dy, wt, dx, BM, BN, WM, WN, True, g.pointwise())
            for ph in phases: tc_fwd_dgrad(g, dy, wt, dx, BM, BN, WM, WN, True, False, ph=ph)
            allok &= check(f"dgrad {BM}x{BN}{' (%d phases)' % len(phases) if phases else ''} {tag}", dx, dxref)
        if g.Ci % 8 == 0 and g.Co % 8 == 0:
            for sp in splits:
                dw = tc_wgrad(g, x, dy, BM, BN, WM, WN, g.pointwise(), sp)
                allok &= check(f"wgrad {BM}x{BN} splits {sp} {tag}", dw, dwref)
    if g.Ci == 1 and g.taps <= KP:
        y = np.full(g.out_pos()*g.Co, np.nan); stem_fwd(g, x, w, y, bias)
        allok &= check(f"stem fwd {tag}", y, yref + np.tile(bias, g.out_pos()))
        for sp in splits:
            allok &= check(f"stem wgrad splits {sp} {tag}", stem_wgrad(g, x, dy, sp), dwref)
    return allok

ok = True
which = sys.argv[1] if len(sys.argv) > 1 else "all"
if which in ("all", "tc"):
    ok &= run_case((2, 3, 4, 5, 16), (24, 3, 3, 3, 16), (1, 1, 1), (1, 1, 1), (1, 1, 1), cfgs=CFGS[1:2] + CFGS[3:4])
    ok &= run_case((1, 5, 4, 6, 8), (16, 3, 3, 3, 8), (2, 2, 2), (1, 1, 1), (1, 1, 1), cfgs=CFGS[3:4])
    ok &= run_case((1, 5, 6, 5, 8), (8, 3, 3, 3, 8), (1, 1, 1), (2, 2, 2), (2, 2, 2), cfgs=CFGS[3:4])
    ok &= run_case((2, 3, 3, 5, 24), (40, 1, 1, 1, 24), (1, 1, 1), (0, 0, 0), (1, 1, 1), cfgs=CFGS[3:4])
    ok &= run_case((1, 4, 5, 7, 16), (136, 3, 1, 3, 16), (1, 2, 1), (0, 1, 0), (1, 1, 2), cfgs=CFGS[0:1] + CFGS[2:3])
if which in ("all", "stem"):
    ok &= run_case((1, 4, 9, 8, 1), (70, 7, 7, 7, 1), (1, 2, 2), (3, 3, 3), (1, 1, 1), cfgs=[], splits=(1, 4))
if which in ("all", "stem2"):
    ok &= run_case((2, 6, 20, 18, 1), (24, 7, 7, 7, 1), (1, 2, 2), (3, 3, 3), (1, 1, 1), cfgs=[], splits=(5,))
    ok &= run_case((1, 5, 7, 9, 1), (8, 3, 5, 3, 1), (2, 1, 2), (1, 2, 0), (1, 1, 2), cfgs=[], splits=(1, 2))
    # Cin = 1 grad input on the tensor-core kernel: 4 stride phases, one useful B row (cols = 1).
    ok &= run_case((1, 4, 9, 8, 1), (16, 7, 7, 7, 1), (1, 2, 2), (3, 3, 3), (1, 1, 1), cfgs=CFGS[3:4], splits=(2,))
if which in ("all", "wide"):
    ok &= run_case((1, 3, 4, 3, 40), (48, 3, 3, 3, 40), (1, 1, 1), (1, 1, 1), (1, 1, 1), cfgs=CFGS[3:4], splits=(2,))
    ok &= run_case((1, 3, 4, 3, 64), (32, 3, 3, 3, 64), (1, 2, 1), (1, 1, 1), (1, 1, 1), cfgs=CFGS[1:2], splits=(1,))

# ---- SIMT 128x128 kernels (conv3d_cuda_simt.cu) ----
class KWalk:
    def __init__(s, ch): s.ch, s.a, s.b, s.c = ch, 0, 0, 0
    def copy(s):
        w = KWalk(s.ch); w.a, w.b, w.c = s.a, s.b, s.c; return w
    def next_tap(s, g):
        s.c += 1
        if s.c == g.K[2]:
            s.c = 0; s.b += 1
            if s.b == g.K[1]: s.b = 0; s.a += 1
    def add(s, g, C, d):
        s.ch += d
        while s.ch >= C: s.ch -= C; s.next_tap(g)

def simt_fwd_dgrad(g, a, b, out, dgrad, bias=None, accumulate=False, relu=False):
    SB, SK = 128, 16
    Cg = g.Co if dgrad else g.Ci; cols = g.Ci if dgrad else g.Co
    rows = g.in_pos() if dgrad else g.out_pos(); K = g.taps*Cg; ntn = cdiv(cols, SB)
    for bid in range(cdiv(rows, SB)*ntn):
        m0 = (bid // ntn)*SB; n0 = (bid % ntn)*SB
        R = np.zeros((SB, SB))
        thr = {}
        for t in range(256):
            lr, lk = t // 2, (t % 2)*8
            kw = KWalk(lk); kw.add(g, Cg, 0)
            thr[t] = (lr, lk, make_row(g, m0 + lr, rows, dgrad), n0 + lr, kw)
        for k0 in range(0, K, SK):
            As = np.full((SK, SB), np.nan); Bs = np.full((SK, SB), np.nan)
            for t in range(256):
                lr, lk, row, bn, kw = thr[t]; w = kw.copy()
                for e8 in range(8):
                    k = k0 + lk + e8; va = vb = 0.0
                    if k < K:
                        pos = tap_pos(g, row, w.a, w.b, w.c, dgrad)
                        if pos >= 0: va = a[pos*Cg + w.ch]
                        if bn < cols: vb = b[bn*K + k]
                    As[lk+e8][lr] = va; Bs[lk+e8][lr] = vb
                    if e8 < 7: w.add(g, Cg, 1)
                kw.add(g, Cg, SK)
            R += As.T @ Bs
        for ty in range(16):
            for tx in range(16):
                for i in range(8):
                    m = m0 + ty*8 + i
                    if m >= rows: continue
                    for j in range(8):
                        n = n0 + tx*8 + j
                        if n < cols: epi(out, m*cols + n, n, R[ty*8+i][tx*8+j], bias, accumulate, relu)

def simt_wgrad(g, x, dy, splits):
    SB, SK = 128, 16
    K = g.taps*g.Ci; Rr = g.out_pos(); steps = cdiv(Rr, SK); per = cdiv(steps, splits)
    part = np.full(splits*g.Co*K, np.nan)
    for bz in range(splits):
      for by in range(cdiv(g.Co, SB)):
        for bx in range(cdiv(K, SB)):
            kb0, co0 = bx*SB, by*SB
            r_begin = min(bz*per*SK, Rr); r_end = min(Rr, r_begin + per*SK)
            C = np.zeros((SB, SB))
            starts = {}
            for t in range(256):
                ks = KWalk(kb0 + (t % 16)*8); ks.add(g, g.Ci, 0); starts[t] = ks
            for r0 in range(r_begin, r_end, SK):
                As = np.full((SK, SB), np.nan); Bs = np.full((SK, SB), np.nan)
                for t in range(256):
                    lr, lc = t // 16, (t % 16)*8; r = r0 + lr
                    row = make_row(g, r, r_end, False); w = starts[t].copy()
                    for e8 in range(8):
                        co = co0 + lc + e8; k = kb0 + lc + e8; va = vb = 0.0
                        if row['valid'] and co < g.Co: va = dy[r*g.Co + co]
                        if k < K:
                            pos = tap_pos(g, row, w.a, w.b, w.c, False)
                            if pos >= 0: vb = x[pos*g.Ci + w.ch]
                        As[lr][lc+e8] = va; Bs[lr][lc+e8] = vb
                        if e8 < 7: w.add(g, g.Ci, 1)
                C += As.T @ Bs
            for ty in range(16):
                for i in range(8):
                    co = co0 + ty*8 + i
                    if co >= g.Co: continue
                    for tx in range(16):
                        for j in range(8):
                            k = kb0 + tx*8 + j
                            if k < K: part[bz*g.Co*K + co*K + k] = C[ty*8+i][tx*8+j]
    return part.reshape(splits, -1).sum(0)

def run_simt(xs, ws, st, pd, dl, splits=(1, 3)):
    g = Geo(xs, ws, st, pd, dl)
    x = ints(int(np.prod(xs))); w = ints(int(np.prod(ws))); dy = ints(g.out_pos()*g.Co)
    yref = ref_fwd(g, x, w); dxref, dwref = ref_bwd(g, x, w, dy)
    wt = w.reshape(g.Co, g.taps, g.Ci).transpose(2, 1, 0).reshape(-1).copy()
    bias = ints(g.Co); y0 = ints(g.out_pos()*g.Co); tag = f"x{xs} w{ws} s{st} p{pd} d{dl}"; ok = True
    y = y0.copy(); simt_fwd_dgrad(g, x, w, y, False, bias, True, True)
    ok &= check(f"simt fwd+bias+acc+relu {tag}", y, np.maximum(y0 + yref + np.tile(bias, g.out_pos()), 0))
    dx = np.full(g.in_pos()*g.Ci, np.nan); simt_fwd_dgrad(g, dy, wt, dx, True)
    ok &= check(f"simt dgrad {tag}", dx, dxref)
    for sp in splits: ok &= check(f"simt wgrad splits {sp} {tag}", simt_wgrad(g, x, dy, sp), dwref)
    return ok

if which in ("all", "phase"):
    ok &= run_case((2, 5, 6, 7, 8), (16, 3, 3, 3, 8), (2, 2, 2), (1, 1, 1), (1, 1, 1), cfgs=CFGS[3:4], splits=(1,))
    ok &= run_case((1, 6, 5, 7, 16), (8, 1, 1, 1, 16), (2, 1, 2), (0, 0, 0), (1, 1, 1), cfgs=CFGS[1:2], splits=(1,))
    ok &= run_case((1, 7, 9, 8, 8), (8, 3, 2, 3, 8), (3, 2, 1), (2, 0, 1), (2, 1, 1), cfgs=CFGS[3:4], splits=(1,))
    ok &= run_case((1, 9, 7, 6, 8), (8, 5, 3, 1, 8), (2, 3, 2), (2, 1, 0), (1, 2, 1), cfgs=CFGS[0:1], splits=(1,))
if which in ("all", "simt"):
    ok &= run_simt((1, 6, 5, 7, 3), (5, 3, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1))
    ok &= run_simt((1, 5, 7, 9, 13), (11, 3, 3, 3, 13), (2, 1, 2), (1, 0, 1), (1, 2, 1))
    ok &= run_simt((2, 3, 4, 5, 1), (130, 3, 1, 2, 1), (1, 2, 1), (1, 1, 0), (1, 1, 1), splits=(2,))
    ok &= run_simt((1, 4, 9, 8, 1), (6, 7, 7, 7, 1), (1, 2, 2), (3, 3, 3), (1, 1, 1), splits=(1,))

# ---- cp.async ring of the tc kernels (igemm and wgrad share it): prologue loads tiles
# 0..S-2 (one commit each, empty past KT); iteration kt: wait_group S-2, __syncthreads,
# load tile kt+S-1 into stage (kt+S-1)%S, commit, compute tile kt from stage kt%S.
# Checks: tile kt's group is complete when read, its stage still holds it, and the
# refilled stage is not the one read in the same iteration (reads of earlier
# iterations are ordered before the refill by this iteration's barrier).
def pipeline_ok(S, KT):
    groups, stage = [], {}
    for t in range(S - 1):
        groups.append([t] if t < KT else [])
        if t < KT: stage[t % S] = t
    for kt in range(KT):
        done = {t for gr in groups[:len(groups) - (S - 2)] for t in gr}
        if kt not in done or stage.get(kt % S) != kt: return False
        nk = kt + S - 1
        if nk < KT:
            if nk % S == kt % S: return False
            stage[nk % S] = nk
        groups.append([nk] if nk < KT else [])
    return True
if which in ("all", "pipe"):
    res = np.array([float(pipeline_ok(S, KT)) for S in range(2, 7) for KT in range(41)])
    ok &= check("cp.async ring, STAGES 2..6, 0..40 k tiles", res, np.ones_like(res))

# ---- tensor-core float32 accumulation vs parity_conv.cpp's 16-bit atol (conv_tol) ----
# Worst-case model of one mma.sync k16 step: the accumulator and the 16 exact
# products are aligned to the largest exponent and truncated to 24 bits (no guard
# bits), summed, and the sum truncated to 24 bits (round toward zero).
def tc_round_ratio(M, K, Co, f16):
    def to16(v):
        if f16: return v.astype(np.float16).astype(np.float64)
        b = v.astype(np.float32).view(np.uint32).astype(np.uint64)
        return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32).astype(np.float64)
    X = to16(rng.uniform(-1, 1, (M, K))); W = to16(rng.uniform(-1, 1, (Co, K))); acc = np.zeros((M, Co))
    for j in range(0, K, 16):
        T = np.concatenate([acc[:, None, :], X[:, j:j+16, None]*W[:, j:j+16].T[None]], axis=1)
        q = np.ldexp(1.0, np.frexp(np.abs(T).max(axis=1))[1] - 24)[:, None, :]
        m, e = np.frexp((np.trunc(T/q)*q).sum(axis=1)); acc = np.ldexp(np.trunc(m*2.0**24)/2.0**24, e)
    P = math.sqrt(K)/3 + 1; a32 = 4*math.sqrt(K)*2.0**-24*P; a16 = a32 + 8*cdiv(K, 16)*2.0**-24*P
    err = np.abs(acc - X @ W.T).max()
    print(f"     tc accumulation {'f16' if f16 else 'bf16'} K={K}: max err {err/a32:.2f} x a32 (random-walk atol), {err/a16:.2f} x a16")
    return err <= a16
if which == "tcround":  # not in "all" (numpy-heavy)
    ok &= check("tensor-core accumulation within the 16-bit atol", np.array([float(tc_round_ratio(4800, 864, 136, f)) for f in (True, False)]), np.ones(2))

print("ALL OK" if ok else "SOME FAILED")
sys.exit(0 if ok else 1)
