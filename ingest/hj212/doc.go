// Package hj212 owns the wire format of HJ 212-2017 (and its 2005 predecessor HJ/T 212-2005),
// the protocol the data loggers (数采仪) of online pollution monitoring stations speak over a
// TCP connection they open to the platform: the frame (`##`, 4-digit length, data segment,
// CRC-16, CR LF), the standard's CRC, the data segment (QN, ST, CN, PW, MN, Flag, PNUM/PNO,
// CP) and the pollutant fields inside CP. It is standard library only and knows nothing of
// devices, profiles or storage: the listener in ingest/ and the decoder in ingest/decode use it
// (docs/contracts.md §8).
package hj212
