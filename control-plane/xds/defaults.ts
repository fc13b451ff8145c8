// Default addresses of the control plane, in a module of their own so the CLI's option
// definitions can name them without loading the gRPC server.
export const DEFAULT_XDS_ADDRESS = '127.0.0.1:15010'
export const DEFAULT_CP_ADMIN = '127.0.0.1:15011'
