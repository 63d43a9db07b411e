// The bodiless acknowledgements a server (or the pooler answering for one)
// sends in the extended protocol, built once: callers only send them.

import { Backend } from '../codes.js';
import { bodiless } from '../serializer.js';
import { parameterDescription } from './parameter-description.js';

export const PARSE_COMPLETE = bodiless(Backend.ParseComplete);
export const BIND_COMPLETE = bodiless(Backend.BindComplete);
export const CLOSE_COMPLETE = bodiless(Backend.CloseComplete);
export const NO_DATA = bodiless(Backend.NoData);
/** ParameterDescription of a statement without parameters. */
export const NO_PARAMETERS = parameterDescription([]);
