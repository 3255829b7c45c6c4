package runcore

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// maxDepth is how deeply maps and slices may nest in a logged value, as in the sidecar.
const maxDepth = 32

// Histogram is a histogram value: either raw Values, which the sidecar bins into
// NumBins equal-width bins (64 when 0, at most 512), or explicit bin edges Bins with
// Counts (len(Bins) == len(Counts)+1). Log it as a value: run.Log(map[string]any{
// "weights": runcore.Histogram{Values: w}}).
type Histogram struct {
	Values  []float64
	NumBins int
	Bins    []float64
	Counts  []int64
}

// MediaKind says what a Media file holds.
type MediaKind int

// Media kinds; a MediaKind other than these is sent as File.
const (
	MediaFile MediaKind = iota
	MediaImage
	MediaAudio
	MediaVideo
)

// Media is a file logged as a value. Path is on the sidecar's host: absolute, or
// relative to the run's working directory (Options.WorkingDir). The sidecar copies
// it into the run's files/media/<kind>/ when the row is logged.
type Media struct {
	Path    string
	Kind    MediaKind
	Caption string
}

// Image is a Media value for an image file.
func Image(path, caption string) Media { return Media{Path: path, Kind: MediaImage, Caption: caption} }

// Audio is a Media value for an audio file.
func Audio(path, caption string) Media { return Media{Path: path, Kind: MediaAudio, Caption: caption} }

// Video is a Media value for a video file.
func Video(path, caption string) Media { return Media{Path: path, Kind: MediaVideo, Caption: caption} }

// File is a Media value for any other file.
func File(path, caption string) Media { return Media{Path: path, Kind: MediaFile, Caption: caption} }

func (m Media) proto() *pb.Media {
	kind := pb.MediaKind_MEDIA_KIND_FILE
	switch m.Kind {
	case MediaImage:
		kind = pb.MediaKind_MEDIA_KIND_IMAGE
	case MediaAudio:
		kind = pb.MediaKind_MEDIA_KIND_AUDIO
	case MediaVideo:
		kind = pb.MediaKind_MEDIA_KIND_VIDEO
	}
	return &pb.Media{Path: m.Path, Kind: kind, Caption: m.Caption}
}

// proto checks the histogram's shape (the sidecar checks its limits) and converts it.
func (h Histogram) proto() (*pb.Histogram, error) {
	switch {
	case h.NumBins < 0 || h.NumBins > math.MaxUint32:
		return nil, fmt.Errorf("NumBins %d is out of range", h.NumBins)
	case len(h.Values) > 0 && (len(h.Bins) > 0 || len(h.Counts) > 0):
		return nil, errors.New("give either raw Values or Bins with Counts, not both")
	case len(h.Values) == 0 && len(h.Counts) == 0:
		return nil, errors.New("no data: give raw Values, or Bins with Counts")
	case len(h.Values) == 0 && len(h.Bins) != len(h.Counts)+1:
		return nil, fmt.Errorf("%d counts need %d bin edges, got %d", len(h.Counts), len(h.Counts)+1, len(h.Bins))
	}
	// Copies: the row is sent later, and the caller may reuse its slices.
	return &pb.Histogram{Bins: slices.Clone(h.Bins), Counts: slices.Clone(h.Counts), Values: slices.Clone(h.Values), NumBins: uint32(h.NumBins)}, nil
}

// toValue converts a Go value to a wire Value. Supported: nil, bool, string, every
// int, uint and float kind (and named types of them), map[string]T, slices and
// arrays, pointers to any of these, Histogram, Media and *runcorev1.Value (sent as
// is: do not change it after logging it).
func toValue(v any) (*pb.Value, error) {
	return toValueDepth(v, 0)
}

func toValueDepth(v any, depth int) (*pb.Value, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		return &pb.Value{Kind: &pb.Value_NullValue{NullValue: true}}, nil
	case float64:
		return doubleValue(x), nil
	case float32:
		return doubleValue(float64(x)), nil
	case int:
		return intValue(int64(x)), nil
	case int64:
		return intValue(x), nil
	case int32:
		return intValue(int64(x)), nil
	case bool:
		return &pb.Value{Kind: &pb.Value_BoolValue{BoolValue: x}}, nil
	case string:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: x}}, nil
	case map[string]any:
		fields := make(map[string]*pb.Value, len(x))
		for k, e := range x {
			pv, err := toValueDepth(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%q]: %w", k, err)
			}
			fields[k] = pv
		}
		return &pb.Value{Kind: &pb.Value_MapValue{MapValue: &pb.MapValue{Fields: fields}}}, nil
	case []any:
		values := make([]*pb.Value, len(x))
		for i, e := range x {
			pv, err := toValueDepth(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			values[i] = pv
		}
		return listValue(values), nil
	case []float64:
		values := make([]*pb.Value, len(x))
		for i, e := range x {
			values[i] = doubleValue(e)
		}
		return listValue(values), nil
	case []int:
		values := make([]*pb.Value, len(x))
		for i, e := range x {
			values[i] = intValue(int64(e))
		}
		return listValue(values), nil
	case []string:
		values := make([]*pb.Value, len(x))
		for i, e := range x {
			values[i] = &pb.Value{Kind: &pb.Value_StringValue{StringValue: e}}
		}
		return listValue(values), nil
	case Histogram:
		h, err := x.proto()
		if err != nil {
			return nil, fmt.Errorf("histogram: %w", err)
		}
		return &pb.Value{Kind: &pb.Value_Histogram{Histogram: h}}, nil
	case *Histogram:
		if x == nil {
			return toValueDepth(nil, depth)
		}
		return toValueDepth(*x, depth)
	case Media:
		return &pb.Value{Kind: &pb.Value_Media{Media: x.proto()}}, nil
	case *Media:
		if x == nil {
			return toValueDepth(nil, depth)
		}
		return toValueDepth(*x, depth)
	case *pb.Value:
		if x == nil || x.Kind == nil {
			return nil, fmt.Errorf("a *runcorev1.Value with no kind set")
		}
		return x, nil
	}
	return reflectValue(reflect.ValueOf(v), depth)
}

// reflectValue handles named types, other map and slice types and pointers.
func reflectValue(rv reflect.Value, depth int) (*pb.Value, error) {
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return doubleValue(rv.Float()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intValue(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return nil, fmt.Errorf("unsigned value %d does not fit an int64; convert it to float64", u)
		}
		return intValue(int64(u)), nil
	case reflect.Bool:
		return &pb.Value{Kind: &pb.Value_BoolValue{BoolValue: rv.Bool()}}, nil
	case reflect.String:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: rv.String()}}, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return toValueDepth(nil, depth)
		}
		return toValueDepth(rv.Elem().Interface(), depth)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map keys must be strings, not %s", rv.Type().Key())
		}
		fields := make(map[string]*pb.Value, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			k := it.Key().String()
			pv, err := toValueDepth(it.Value().Interface(), depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%q]: %w", k, err)
			}
			fields[k] = pv
		}
		return &pb.Value{Kind: &pb.Value_MapValue{MapValue: &pb.MapValue{Fields: fields}}}, nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return listValue(nil), nil
		}
		values := make([]*pb.Value, rv.Len())
		for i := range values {
			pv, err := toValueDepth(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			values[i] = pv
		}
		return listValue(values), nil
	}
	if !rv.IsValid() {
		return toValueDepth(nil, depth)
	}
	return nil, fmt.Errorf("unsupported type %s; log numbers, bools, strings, nil, map[string]any, slices, runcore.Histogram or runcore.Media", rv.Type())
}

func doubleValue(f float64) *pb.Value {
	return &pb.Value{Kind: &pb.Value_DoubleValue{DoubleValue: f}}
}

func intValue(i int64) *pb.Value {
	return &pb.Value{Kind: &pb.Value_IntValue{IntValue: i}}
}

func listValue(values []*pb.Value) *pb.Value {
	return &pb.Value{Kind: &pb.Value_ListValue{ListValue: &pb.ListValue{Values: values}}}
}

// toValueMap converts a config or summary map; what names it in errors.
func toValueMap(m map[string]any, what string) (map[string]*pb.Value, error) {
	out := make(map[string]*pb.Value, len(m))
	for k, v := range m {
		pv, err := toValue(v)
		if err != nil {
			return nil, fmt.Errorf("%s key %q: %w", what, k, err)
		}
		out[k] = pv
	}
	return out, nil
}

// FromValue converts a wire Value to Go: float64, int64, bool, string, nil,
// map[string]any, []any, Histogram or Media.
func FromValue(v *pb.Value) any {
	switch k := v.GetKind().(type) {
	case *pb.Value_DoubleValue:
		return k.DoubleValue
	case *pb.Value_IntValue:
		return k.IntValue
	case *pb.Value_BoolValue:
		return k.BoolValue
	case *pb.Value_StringValue:
		return k.StringValue
	case *pb.Value_MapValue:
		return fromValueMap(k.MapValue.GetFields())
	case *pb.Value_ListValue:
		out := make([]any, len(k.ListValue.GetValues()))
		for i, e := range k.ListValue.GetValues() {
			out[i] = FromValue(e)
		}
		return out
	case *pb.Value_Histogram:
		h := k.Histogram
		return Histogram{Values: h.GetValues(), NumBins: int(h.GetNumBins()), Bins: h.GetBins(), Counts: h.GetCounts()}
	case *pb.Value_Media:
		m := k.Media
		kind := MediaFile
		switch m.GetKind() {
		case pb.MediaKind_MEDIA_KIND_IMAGE:
			kind = MediaImage
		case pb.MediaKind_MEDIA_KIND_AUDIO:
			kind = MediaAudio
		case pb.MediaKind_MEDIA_KIND_VIDEO:
			kind = MediaVideo
		}
		return Media{Path: m.GetPath(), Kind: kind, Caption: m.GetCaption()}
	}
	return nil
}

func fromValueMap(m map[string]*pb.Value) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = FromValue(v)
	}
	return out
}
