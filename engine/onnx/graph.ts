// Small typed helpers to build ONNX graphs with onnx-proto.
//
// The project writes its own ONNX files (the built-in lexical model and the
// BERT-shaped stand-in for real exports) so the engine only ever has one path:
// an ONNX session. These helpers keep those builders short and typed; they are
// not a general ONNX authoring library.

import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** Default opset: 17 has LayerNormalization and is read by every onnxruntime since 1.13. */
export const OPSET = 17;
/** IR version 8 is the one that goes with opset 17. */
export const IR_VERSION = 8;

export type TensorProto = onnxProto.onnx.ITensorProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;

/** ONNX element types the project uses. */
export const ElemType = {
  FLOAT: onnx.TensorProto.DataType.FLOAT,
  INT64: onnx.TensorProto.DataType.INT64,
} as const;
export type ElemType = (typeof ElemType)[keyof typeof ElemType];

/** A dimension: a fixed size, or a symbolic name (dynamic, e.g. "batch_size"). */
export type Dim = number | string;

export interface Graph {
  name: string;
  nodes: NodeProto[];
  initializers: TensorProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  /** Optional shape hints for intermediate values. */
  valueInfo?: ValueInfoProto[];
}

export interface EncodeOptions {
  opset?: number;
  producerName?: string;
  docString?: string;
  /** Free-form key/value metadata stored in the model (e.g. the generator's seed). */
  metadata?: Record<string, string>;
}

function checkDims(name: string, dims: readonly number[], length: number): void {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (expected !== length) {
    throw new Error(`tensor ${name}: dims [${dims.join(', ')}] need ${expected} values, got ${length}`);
  }
}

/**
 * A float32 tensor stored as raw_data. The bytes are viewed, not copied: a
 * 90 MB weight matrix must not become a JS number array (ONNX raw_data is
 * little-endian, as are the hosts onnxruntime-node ships for).
 */
export function floatTensor(name: string, dims: readonly number[], data: Float32Array): TensorProto {
  checkDims(name, dims, data.length);
  return {
    name,
    dims: [...dims],
    dataType: ElemType.FLOAT,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** An int64 tensor stored as raw_data (shape vectors, axes, indices). */
export function int64Tensor(name: string, dims: readonly number[], data: BigInt64Array): TensorProto {
  checkDims(name, dims, data.length);
  return {
    name,
    dims: [...dims],
    dataType: ElemType.INT64,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** Convenience: an int64 vector (or a scalar with `scalar: true`) from numbers. */
export function int64Const(name: string, values: readonly number[], scalar = false): TensorProto {
  const data = BigInt64Array.from(values, (v) => BigInt(v));
  return int64Tensor(name, scalar ? [] : [values.length], data);
}

/** Convenience: a float vector (or a scalar with `scalar: true`) from numbers. */
export function floatConst(name: string, values: readonly number[], scalar = false): TensorProto {
  return floatTensor(name, scalar ? [] : [values.length], Float32Array.from(values));
}

/** A typed tensor value (graph input, output or intermediate hint). */
export function tensorValueInfo(name: string, elemType: ElemType, dims: readonly Dim[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

// Attributes are built by kind: a JS number cannot say whether it is an ONNX
// INT or FLOAT, and getting that wrong is a load-time error in onnxruntime.
export function intAttr(name: string, value: number): AttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}
export function floatAttr(name: string, value: number): AttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value };
}
export function intsAttr(name: string, values: readonly number[]): AttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...values] };
}
export function stringAttr(name: string, value: string): AttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(value) };
}
export function tensorAttr(name: string, value: TensorProto): AttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.TENSOR, t: value };
}

export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: readonly AttributeProto[] = [],
  name?: string,
): NodeProto {
  return { opType, input: [...inputs], output: [...outputs], attribute: [...attributes], name: name ?? outputs[0] };
}

/**
 * Accumulates nodes and initializers with generated value names, so graph
 * code reads as a sequence of ops: `const y = g.op('Add', [a, b]);`.
 */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private counter = 0;
  private readonly names = new Set<string>();

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    let name = `${prefix}_${this.counter++}`;
    while (this.names.has(name)) name = `${prefix}_${this.counter++}`;
    this.names.add(name);
    return name;
  }

  /** Adds an initializer and returns its name. */
  init(tensor: TensorProto): string {
    const name = tensor.name ?? '';
    if (!name || this.names.has(name)) throw new Error(`initializer name ${JSON.stringify(name)} is empty or taken`);
    this.names.add(name);
    this.initializers.push(tensor);
    return name;
  }

  /** Adds a single-output node; the output is named `out` or a fresh name. */
  op(opType: string, inputs: readonly string[], attributes: readonly AttributeProto[] = [], out?: string): string {
    const output = out ?? this.fresh(opType.toLowerCase());
    if (out !== undefined) this.names.add(out);
    this.nodes.push(node(opType, inputs, [output], attributes));
    return output;
  }

  build(name: string, inputs: ValueInfoProto[], outputs: ValueInfoProto[], valueInfo?: ValueInfoProto[]): Graph {
    return { name, nodes: this.nodes, initializers: this.initializers, inputs, outputs, valueInfo };
  }
}

/** Serialises a graph as an ONNX ModelProto (default domain, opset 17). */
export function encodeModel(graph: Graph, options: EncodeOptions = {}): Uint8Array {
  const model: onnxProto.onnx.IModelProto = {
    irVersion: IR_VERSION,
    producerName: options.producerName ?? 'pglynx',
    docString: options.docString,
    opsetImport: [{ domain: '', version: options.opset ?? OPSET }],
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes,
      initializer: graph.initializers,
      input: graph.inputs,
      output: graph.outputs,
      valueInfo: graph.valueInfo ?? [],
    },
  };
  return onnx.ModelProto.encode(model).finish();
}
