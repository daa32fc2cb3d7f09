package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// jobRunner stands in for the kubelet and the Job and garbage collectors,
// for hook Jobs only: it runs each new Job's container args with the real
// ballast binary (the image is ignored), writes the Job's status as the Job
// controller would, and clears the foregroundDeletion finalizer of a
// deleted Job as the garbage collector would once it has no dependents
// (there are no Pods).
type jobRunner struct {
	kube       kubernetes.Interface
	namespace  string
	ballast    string
	kubeconfig string
	log        *os.File

	mu   sync.Mutex
	runs []jobRun
}

// jobRun is one hook run.
type jobRun struct {
	Job    string
	At     time.Time
	OK     bool
	Output string
}

func startJobRunner(t *testing.T, kube kubernetes.Interface, namespace, ballast, kubeconfig, logPath string) *jobRunner {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	r := &jobRunner{kube: kube, namespace: namespace, ballast: ballast, kubeconfig: kubeconfig, log: f}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.loop(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		f.Close()
	})
	return r
}

// Runs returns the runs so far.
func (r *jobRunner) Runs() []jobRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

func (r *jobRunner) loop(ctx context.Context) {
	seen := map[types.UID]bool{}
	for ctx.Err() == nil {
		jobs, err := r.kube.BatchV1().Jobs(r.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			fmt.Fprintf(r.log, "list jobs: %v\n", err)
		} else {
			for i := range jobs.Items {
				j := &jobs.Items[i]
				switch {
				case j.DeletionTimestamp != nil:
					r.finalize(ctx, j)
				case !seen[j.UID] && len(j.Status.Conditions) == 0:
					seen[j.UID] = true
					r.run(ctx, j)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// mountSecrets does what the kubelet does for the container's Secret
// volumes: it writes each Secret's keys as files into a directory of its
// own, and returns the container's args with each mount path replaced by
// that directory (the args name files under the mount, e.g.
// --api-token-file).
func (r *jobRunner) mountSecrets(ctx context.Context, j *batchv1.Job) ([]string, error) {
	spec := j.Spec.Template.Spec
	args := slices.Clone(spec.Containers[0].Args)
	for _, m := range spec.Containers[0].VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 || spec.Volumes[i].Secret == nil {
			return nil, fmt.Errorf("volume %s: only Secret volumes are supported", m.Name)
		}
		sec, err := r.kube.CoreV1().Secrets(j.Namespace).Get(ctx, spec.Volumes[i].Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("mount Secret %s/%s: %w", j.Namespace, spec.Volumes[i].Secret.SecretName, err)
		}
		dir, err := os.MkdirTemp("", "secret-"+m.Name+"-")
		if err != nil {
			return nil, err
		}
		for k, v := range sec.Data {
			if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
				return nil, err
			}
		}
		for a := range args {
			if rest, ok := strings.CutPrefix(args[a], m.MountPath+"/"); ok {
				args[a] = filepath.Join(dir, rest)
			}
		}
	}
	return args, nil
}

// finalize removes the foregroundDeletion finalizer once it is the last one.
func (r *jobRunner) finalize(ctx context.Context, j *batchv1.Job) {
	if !slices.Equal(j.Finalizers, []string{metav1.FinalizerDeleteDependents}) {
		return
	}
	j.Finalizers = nil
	if _, err := r.kube.BatchV1().Jobs(j.Namespace).Update(ctx, j, metav1.UpdateOptions{}); err != nil {
		fmt.Fprintf(r.log, "clear finalizer of %s: %v\n", j.Name, err)
		return
	}
	fmt.Fprintf(r.log, "%s: cleared %s of deleted job %s\n", time.Now().Format(time.RFC3339Nano), metav1.FinalizerDeleteDependents, j.Name)
}

// run executes the Job's only container with the ballast binary and writes
// the outcome as Job status.
func (r *jobRunner) run(ctx context.Context, j *batchv1.Job) {
	cs := j.Spec.Template.Spec.Containers
	if len(cs) != 1 || len(cs[0].Command) != 0 {
		fmt.Fprintf(r.log, "job %s: not a ballast hook (want one container with args only); left alone\n", j.Name)
		return
	}
	start := metav1.Now()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args, err := r.mountSecrets(cctx, j)
	if err != nil {
		// As the kubelet would: a Secret volume that cannot be mounted
		// keeps the pod from starting; the Job then fails.
		fmt.Fprintf(r.log, "job %s: %v\n", j.Name, err)
		args = []string{"--mount-failed"}
	}
	cmd := exec.CommandContext(cctx, r.ballast, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KUBECONFIG=" + r.kubeconfig, "HOME=" + os.TempDir()}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	ok := err == nil
	fmt.Fprintf(r.log, "%s: job %s (uid %s) ok=%v err=%v\n%s\n", time.Now().Format(time.RFC3339Nano), j.Name, j.UID, ok, err, out.String())
	r.mu.Lock()
	r.runs = append(r.runs, jobRun{Job: j.Name, At: time.Now(), OK: ok, Output: out.String()})
	r.mu.Unlock()

	now := metav1.Now()
	j.Status.StartTime = &start
	cond := func(typ batchv1.JobConditionType, reason string) batchv1.JobCondition {
		return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, LastProbeTime: now, LastTransitionTime: now}
	}
	if ok {
		j.Status.CompletionTime = &now
		j.Status.Succeeded = 1
		j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached"), cond(batchv1.JobComplete, "CompletionsReached")}
	} else {
		j.Status.Failed = 1
		j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "BackoffLimitExceeded"), cond(batchv1.JobFailed, "BackoffLimitExceeded")}
	}
	if _, err := r.kube.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		fmt.Fprintf(r.log, "job %s: write status: %v\n", j.Name, err)
	}
}
